"""AliExpress in its published per-country layout (the GRec paper's public benchmark, Sec. 4.1;
not shipped here): `<DIR>/AliExpress_<CC>/{train,test}.csv`, columns `search_id`,
`categorical_1..16`, `numerical_1..63`, `click`, `conversion` (search_id, a request id, is not
read). Tasks: CTR = click, CTCVR =
conversion, both over all impressions; countries are scenarios. The provided train/test split is by
time; validation is carved from the end of each country's training file (never the test file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grec.data.contract import Contract, write_dataset
from grec.data.real import PLACEHOLDER_ITEM_FEATURES, placeholder_items
from grec.data.schema import SchemaError, TaskVocabulary

CATEGORICAL = [f"categorical_{i}" for i in range(1, 17)]
NUMERICAL = [f"numerical_{i}" for i in range(1, 64)]
LABELS = ["click", "conversion"]
FEATURES = [*CATEGORICAL, *NUMERICAL]
COLUMNS = ["search_id", *FEATURES, *LABELS]
STAMP = pd.Timestamp("2018-01-01", tz="UTC")  # the files carry no time (file order is time order)
SOURCE = ("AliExpress search logs, per-country subsets (Li et al., \"Improving multi-scenario learning to rank in "
          "e-commerce by exploiting task relationships in the label space\", CIKM 2020), in the MTReclib layout; "
          "the GRec paper's public benchmark (Sec. 4.1). Validation: the last 10% of each training file.")
# Published test AUC, CTR / CTCVR, each country trained on its own (MTReclib README, mean of 5 runs;
# that library early-stops on the test AUC, so these are optimistic).
PUBLISHED = {
    "SingleTask": {"NL": (.7222, .8590), "ES": (.7266, .8855), "FR": (.7259, .8737), "US": (.7061, .8637)},
    "Shared-Bottom": {"NL": (.7228, .8511), "ES": (.7287, .8866), "FR": (.7245, .8700), "US": (.7029, .8698)},
    "MMoE": {"NL": (.7234, .8606), "ES": (.7285, .8898), "FR": (.7216, .8811), "US": (.7043, .8758)},
    "PLE": {"NL": (.7292, .8591), "ES": (.7273, .8913), "FR": (.7276, .8805), "US": (.7138, .8675)},
    "AITM": {"NL": (.7240, .8577), "ES": (.7290, .8885), "FR": (.7236, .8763), "US": (.7048, .8730)},
    "MetaHeac": {"NL": (.7263, .8615), "ES": (.7299, .8883), "FR": (.7249, .8813), "US": (.7089, .8743)},
}
PUBLISHED_ORDER = ("NL", "ES", "FR", "US", "RU")  # the countries' order in published tables


def countries(folder: Path) -> list[str]:
    """Country codes with both files present under `folder`, in the published table's order."""
    found = sorted((p.name.removeprefix("AliExpress_") for p in Path(folder).glob("AliExpress_*")
                    if (p / "train.csv").exists() and (p / "test.csv").exists()),
                   key=lambda c: (PUBLISHED_ORDER.index(c) if c in PUBLISHED_ORDER else len(PUBLISHED_ORDER), c))
    if not found:
        raise SchemaError(f"{folder}: no AliExpress_<CC>/train.csv and test.csv found (the published layout)")
    return found


def read_file(path: Path, rows: int | None = None) -> pd.DataFrame:
    """One country's train.csv or test.csv (its first `rows` rows where given: file order is time
    order). The published files carry `click` and `conversion`; the original release's single
    `label` (0 impression, 1 click, 2 purchase) is read too."""
    header = pd.read_csv(path, nrows=0).columns.tolist()
    labels = LABELS if "label" not in header or set(LABELS) <= set(header) else ["label"]
    missing = [c for c in [*FEATURES, *labels] if c not in header]
    if missing:
        raise SchemaError(f"{path}: missing columns {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                          f"(expected {CATEGORICAL[0]}..{CATEGORICAL[-1]}, {NUMERICAL[0]}..{NUMERICAL[-1]}, click, conversion)")
    try:
        frame = pd.read_csv(path, usecols=[*FEATURES, *labels], nrows=rows,
                            dtype={**{c: np.int64 for c in CATEGORICAL}, **{c: np.float32 for c in NUMERICAL}})
    except ValueError:  # a cell that is not a number (categorical codes must be integers): find it
        raw = pd.read_csv(path, usecols=FEATURES, nrows=rows, dtype=str)
        for column in FEATURES:
            number = pd.to_numeric(raw[column], errors="coerce")
            bad = number.isna() | ((number % 1 != 0) if column in CATEGORICAL else False)
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                kind = "an integer category code" if column in CATEGORICAL else "a number"
                raise SchemaError(f"{path}: row {row}, column {column}: {raw[column].iloc[row]!r} is not {kind}") from None
        raise
    allowed = {"label": [0, 1, 2], "click": [0, 1], "conversion": [0, 1]}
    for label in labels:
        bad = ~frame[label].isin(allowed[label])
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise SchemaError(f"{path}: row {row}, column {label}: {frame[label].iloc[row]!r} is not one of {allowed[label]}")
    if labels == ["label"]:
        label = frame.pop("label")
        frame["click"], frame["conversion"] = (label >= 1).astype(np.int8), (label == 2).astype(np.int8)
    funnel = (frame["conversion"] == 1) & (frame["click"] == 0)
    if funnel.any():
        raise SchemaError(f"{path}: {int(funnel.sum())} rows convert without a click (first: row {int(np.flatnonzero(funnel)[0])})")
    negative = frame[CATEGORICAL].lt(0).any()
    if negative.any():
        column = negative.idxmax()
        row = int(np.flatnonzero(frame[column].lt(0).to_numpy())[0])
        raise SchemaError(f"{path}: row {row}, column {column}: negative category code {frame[column].iloc[row]}")
    return frame


def read(folder: Path, valid_share: float = 0.1, rows: int | None = None) -> pd.DataFrame:
    """Every country's rows with `country` and `split` (train / valid: the last `valid_share` of
    the training file, in file order, which is time order / test). `rows`: at most this many rows
    of each file, from its start (to fit a machine's memory)."""
    parts = []
    for country in countries(folder):
        train = read_file(Path(folder) / f"AliExpress_{country}" / "train.csv", rows)
        n_valid = int(round(len(train) * valid_share))
        split = np.where(np.arange(len(train)) >= len(train) - n_valid, "valid", "train")
        test = read_file(Path(folder) / f"AliExpress_{country}" / "test.csv", rows)
        parts += [train.assign(country=country, split=split), test.assign(country=country, split="test")]
    return pd.concat(parts, ignore_index=True)


def task_vocabulary(country_codes: list[str]) -> TaskVocabulary:
    """A flow per country; CTR = click and CTCVR = conversion, both over every impression."""
    return TaskVocabulary(flows=tuple(country_codes), use_cases=("CTR", "CTCVR"),
                          labels={"CTR": "click", "CTCVR": "conversion"}, populations={"CTR": None, "CTCVR": None})


def contract(country_codes: list[str]) -> Contract:
    """All 79 features as impression context (the files do not say which describe the user and
    which the item); one placeholder customer and item; conversion only after a click."""
    return Contract.define("aliexpress", {"impressions": {"categorical": CATEGORICAL, "numerical": NUMERICAL},
                                          "items": PLACEHOLDER_ITEM_FEATURES},
                           task_vocabulary(country_codes), funnel=[("click", "conversion")], split="split", source=SOURCE,
                           inputs=())


def to_tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """`read`'s rows as the platform's tables: an impression per row (search_id is a request id,
    not a feature, and not unique per row), the country as its flow. The files have no time:
    every row is stamped STAMP and the split is the column."""
    n = len(frame)
    impressions = frame[FEATURES].copy()
    impressions.insert(0, "impression_id", np.arange(n))
    impressions = impressions.assign(event_timestamp=STAMP, customer_id=0, item_id=0, flow=frame["country"].to_numpy(),
                                     click=frame["click"].astype(np.int8).to_numpy(),
                                     conversion=frame["conversion"].astype(np.int8).to_numpy(), split=frame["split"].to_numpy())
    return {"customers": pd.DataFrame({"customer_id": [0], "updated_at": [STAMP]}), "items": placeholder_items(STAMP),
            "impressions": impressions}


def load(source: Path, out: Path, rows: int | None = None) -> dict[str, Path]:
    """Read every country under `source`, write the tables and contract to `out`."""
    frame = read(source, rows=rows)
    return write_dataset(to_tables(frame), out, contract(countries(source)))


def write_sample(folder: Path, country_rows: dict[str, int], seed: int = 0) -> Path:
    """Files in the published layout (tests; a look at the format): for each country, train.csv
    and test.csv with the given number of rows each. Clicks (about 4%) depend on categorical_1 and
    numerical_1, conversions (about a tenth of clicks) on numerical_2, so a model has something
    to learn, and nothing else does."""
    rng = np.random.default_rng(seed)
    for country, n in country_rows.items():
        out = Path(folder) / f"AliExpress_{country}"
        out.mkdir(parents=True, exist_ok=True)
        for name in ("train", "test"):
            features = {**{c: rng.integers(0, 50, n) for c in CATEGORICAL}, **{c: np.round(rng.random(n), 6) for c in NUMERICAL}}
            logit = -5.8 + 2.5 * (features["categorical_1"] < 10) + 2.5 * features["numerical_1"]
            click = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
            conversion = click & (rng.random(n) < 0.2 * features["numerical_2"]).astype(int)
            frame = pd.DataFrame({"search_id": np.arange(n) // 10, **features, "click": click, "conversion": conversion})
            frame.to_csv(out / f"{name}.csv", index=False)
    return Path(folder)
