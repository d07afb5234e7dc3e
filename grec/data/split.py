"""Splits by time: the test window is the last `test_days`, validation the `valid_days` before
it; or a contract's own split column."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from grec.data.contract import Contract


@dataclass(frozen=True)
class TimeSplit:
    valid_start: pd.Timestamp
    test_start: pd.Timestamp
    end: pd.Timestamp

    @classmethod
    def from_timestamps(cls, ts: pd.Series, test_days: int = 7, valid_days: int = 7) -> TimeSplit:
        end = ts.max().floor("D") + pd.Timedelta(days=1)
        test_start = end - pd.Timedelta(days=test_days)
        return cls(test_start - pd.Timedelta(days=valid_days), test_start, end)

    def masks(self, ts: pd.Series) -> dict[str, np.ndarray]:
        return {
            "train": (ts < self.valid_start).to_numpy(),
            "valid": ((ts >= self.valid_start) & (ts < self.test_start)).to_numpy(),
            "test": (ts >= self.test_start).to_numpy(),
        }


def split_masks(frame: pd.DataFrame, contract: Contract, split: TimeSplit | None) -> dict[str, np.ndarray]:
    """train / valid / test row masks: by the contract's split column where it has one (a source
    split by other rules than time), else by `split`'s times."""
    if contract.split:
        return {name: (frame[contract.split] == name).to_numpy() for name in ("train", "valid", "test")}
    return split.masks(frame["event_timestamp"])

