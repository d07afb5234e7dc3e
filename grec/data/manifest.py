"""A training set's folder: train / valid / test parquet files and the manifest beside them
(which feature service built it, from which impressions file and split, which rows were left
out). Written by grec.features (from the feature store or from raw tables), read by the
streaming dataset and by training."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from grec.data.contract import TELECOM
from grec.data.schema import SchemaError
from grec.data.split import TimeSplit

MANIFEST = "manifest.json"


@dataclass
class TrainingSetManifest:
    feature_service: str
    source: str  # the impressions file
    source_sha256: str
    rows: dict[str, int]
    split: dict[str, str]  # valid_start, test_start, end (ISO)
    columns: list[str]
    contract: str = TELECOM.name  # the data's contract (contract.json beside the splits unless the storefront's)
    split_column: str | None = None  # the contract's split column, where rows are not split by time
    raw_fingerprint: str | None = None  # a set written from raw tables (grec.features.raw_set): their files and split
    # impressions the feature store had no value for, left out under the policy: {what: {rows, first, last, example}}
    left_out: dict[str, dict] = field(default_factory=dict)

    def time_split(self) -> TimeSplit:
        return TimeSplit(**{k: pd.Timestamp(v) for k, v in self.split.items()})


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(set_dir: Path) -> TrainingSetManifest:
    path = Path(set_dir) / MANIFEST
    if not path.exists():
        raise SchemaError(f"{set_dir}: not a training set (no {MANIFEST}); build one with `grec features training-set`")
    return TrainingSetManifest(**json.loads(path.read_text()))

