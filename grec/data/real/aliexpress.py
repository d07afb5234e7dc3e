"""AliExpress in its published per-country layout (the GRec paper's public benchmark, Sec. 4.1;
not shipped here): `<DIR>/AliExpress_<CC>/{train,test}.csv`, columns `search_id`,
`categorical_1..16`, `numerical_1..63`, `click`, `conversion`. Tasks: CTR = click, CTCVR =
conversion, both over all impressions; countries are scenarios. The provided train/test split is by
time; validation is carved from the end of each country's training file (never the test file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grec.data.schema import SchemaError

CATEGORICAL = [f"categorical_{i}" for i in range(1, 17)]
NUMERICAL = [f"numerical_{i}" for i in range(1, 64)]
LABELS = ["click", "conversion"]
COLUMNS = ["search_id", *CATEGORICAL, *NUMERICAL, *LABELS]


def countries(folder: Path) -> list[str]:
    """Country codes with both files present under `folder`."""
    found = sorted(p.name.removeprefix("AliExpress_") for p in Path(folder).glob("AliExpress_*")
                   if (p / "train.csv").exists() and (p / "test.csv").exists())
    if not found:
        raise SchemaError(f"{folder}: no AliExpress_<CC>/train.csv and test.csv found (the published layout)")
    return found


def read_file(path: Path) -> pd.DataFrame:
    header = pd.read_csv(path, nrows=0).columns.tolist()
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise SchemaError(f"{path}: missing columns {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                          f"(expected {COLUMNS[0]}, {CATEGORICAL[0]}..{CATEGORICAL[-1]}, {NUMERICAL[0]}..{NUMERICAL[-1]}, click, conversion)")
    frame = pd.read_csv(path, usecols=COLUMNS)
    for label in LABELS:
        bad = ~frame[label].isin([0, 1])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise SchemaError(f"{path}: row {row}, column {label}: {frame[label].iloc[row]!r} is not 0 or 1")
    funnel = (frame["conversion"] == 1) & (frame["click"] == 0)
    if funnel.any():
        raise SchemaError(f"{path}: {int(funnel.sum())} rows convert without a click (first: row {int(np.flatnonzero(funnel)[0])})")
    return frame


def read(folder: Path, valid_share: float = 0.1) -> pd.DataFrame:
    """Every country's rows with `country` and `split` (train / valid: the last `valid_share` of
    the training file, in file order, which is time order / test)."""
    parts = []
    for country in countries(folder):
        train = read_file(Path(folder) / f"AliExpress_{country}" / "train.csv")
        n_valid = int(round(len(train) * valid_share))
        split = np.where(np.arange(len(train)) >= len(train) - n_valid, "valid", "train")
        test = read_file(Path(folder) / f"AliExpress_{country}" / "test.csv")
        parts += [train.assign(country=country, split=split), test.assign(country=country, split="test")]
    return pd.concat(parts, ignore_index=True)


def write_sample(folder: Path, country_rows: dict[str, int], seed: int = 0) -> Path:
    """Files in the published layout with random content (tests; a look at the format): for each
    country, train.csv and test.csv with the given number of rows each."""
    rng = np.random.default_rng(seed)
    for country, n in country_rows.items():
        out = Path(folder) / f"AliExpress_{country}"
        out.mkdir(parents=True, exist_ok=True)
        for name in ("train", "test"):
            click = (rng.random(n) < 0.03).astype(int)
            frame = pd.DataFrame({"search_id": np.arange(n),
                                  **{c: rng.integers(0, 50, n) for c in CATEGORICAL},
                                  **{c: np.round(rng.random(n), 6) for c in NUMERICAL},
                                  "click": click, "conversion": click & (rng.random(n) < 0.1).astype(int)})
            frame.to_csv(out / f"{name}.csv", index=False)
    return Path(folder)
