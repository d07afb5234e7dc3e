"""UCI Census-Income (KDD), the MMoE paper's two-task benchmark (Ma et al., KDD 2018).

Tasks: income > 50K (about 6% positive) and marital status "Never married" (about 43%). Only the
test split (`census-income.test.gz`, 99,762 rows) ships with this project, so train, validation
and test are carved from it: stratified on the pair of labels, fixed seed, 60/20/20 by default.
`marital_stat` and `income_50k` are the labels, not features; `instance_weight` is the census
sampling weight, kept but not a feature.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grec.data.contract import Contract, write_dataset
from grec.data.real import PLACEHOLDER_ITEM_FEATURES, placeholder_items
from grec.data.schema import SchemaError, TaskVocabulary

FILE = "census-income.test.gz"
# The 42 columns of the UCI description, in file order (the file has no header).
COLUMNS = [
    "age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour", "hs_college", "marital_stat",
    "major_ind_code", "major_occ_code", "race", "hisp_origin", "sex", "union_member", "unemp_reason", "full_or_part_emp",
    "capital_gains", "capital_losses", "stock_dividends", "tax_filer_stat", "region_prev_res", "state_prev_res",
    "det_hh_fam_stat", "det_hh_summ", "instance_weight", "mig_chg_msa", "mig_chg_reg", "mig_move_reg", "mig_same",
    "mig_prev_sunbelt", "num_emp", "fam_under_18", "country_father", "country_mother", "country_self", "citizenship",
    "own_or_self", "vet_question", "vet_benefits", "weeks_worked", "year", "income_50k",
]
NUMERICAL = ["age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "num_emp", "weeks_worked"]
NOT_FEATURES = ["marital_stat", "income_50k", "instance_weight"]
CATEGORICAL = [c for c in COLUMNS if c not in NUMERICAL + NOT_FEATURES]  # codes such as det_ind_code are categories
TASKS = {"income": "income over 50K", "never_married": "marital status Never married"}
FLOW = "CENSUS"
STAMP = pd.Timestamp("1995-01-01", tz="UTC")  # the survey years are 1994-95; rows carry no time
SOURCE = ("UCI Census-Income (KDD), census-income.test.gz (99,762 rows; Dua and Graff, UCI ML Repository); "
          "the MMoE paper's two-task benchmark (Ma et al., KDD 2018). Train/valid/test carved 60/20/20 from the "
          "test split, stratified on both labels.")


def read(folder: Path) -> pd.DataFrame:
    """The census file as a frame: text cells stripped, the two task labels as 0/1 int8 columns."""
    path = Path(folder) / FILE
    if not path.exists():
        raise SchemaError(f"{path}: file not found (the UCI Census-Income (KDD) test split)")
    frame = pd.read_csv(path, header=None, names=COLUMNS, skipinitialspace=True, dtype={c: str for c in CATEGORICAL})
    if frame.shape[1] != len(COLUMNS) or frame["income_50k"].isna().any():
        raise SchemaError(f"{path}: expected {len(COLUMNS)} comma-separated columns per row")
    income = frame["income_50k"].str.rstrip(".")
    unknown = ~income.isin(["- 50000", "50000+"])
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise SchemaError(f"{path}: row {row}, column income_50k: {frame['income_50k'].iloc[row]!r} is not '- 50000.' or '50000+.'")
    frame["income"] = (income == "50000+").astype(np.int8)
    frame["never_married"] = (frame["marital_stat"] == "Never married").astype(np.int8)
    return frame


def split(frame: pd.DataFrame, seed: int = 0, valid: float = 0.2, test: float = 0.2) -> pd.Series:
    """'train' / 'valid' / 'test' per row, stratified on the (income, never_married) pair."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(frame), dtype=object)
    stratum = frame["income"].to_numpy() * 2 + frame["never_married"].to_numpy()
    for s in np.unique(stratum):
        rows = rng.permutation(np.flatnonzero(stratum == s))
        n_test, n_valid = round(len(rows) * test), round(len(rows) * valid)
        out[rows[:n_test]] = "test"
        out[rows[n_test:n_test + n_valid]] = "valid"
        out[rows[n_test + n_valid:]] = "train"
    return pd.Series(out, index=frame.index, name="split")


def task_vocabulary() -> TaskVocabulary:
    """One flow, a use case per task."""
    return TaskVocabulary(flows=(FLOW,), use_cases=("INCOME", "NEVER_MARRIED"),
                          labels={"INCOME": "income", "NEVER_MARRIED": "never_married"},
                          populations={"INCOME": None, "NEVER_MARRIED": None})


def contract() -> Contract:
    """Persons as customers with all 40 features; one placeholder item; the split as a column."""
    return Contract.define(
        "census", {"customers": {"categorical": CATEGORICAL, "numerical": NUMERICAL}, "items": PLACEHOLDER_ITEM_FEATURES},
        task_vocabulary(), split="split", source=SOURCE, inputs=())


def to_tables(frame: pd.DataFrame, split_column: pd.Series) -> dict[str, pd.DataFrame]:
    """Census rows as the platform's tables: a customer per person (every categorical column as
    integer codes of its sorted categories over the whole file, a mapping that carries no label;
    the numericals as they are), an impression per person of the one placeholder item in the one
    flow, with the two labels and the split. Census has no time: every row is stamped STAMP."""
    n = len(frame)
    customers = pd.DataFrame({c: pd.Categorical(frame[c].fillna("?")).codes.astype(np.int64) for c in CATEGORICAL})
    for c in NUMERICAL:
        customers[c] = frame[c].astype(np.float32).to_numpy()
    customers.insert(0, "customer_id", np.arange(n))
    customers.insert(1, "updated_at", STAMP)
    impressions = pd.DataFrame({
        "impression_id": np.arange(n), "event_timestamp": STAMP, "customer_id": np.arange(n), "item_id": 0, "flow": FLOW,
        "income": frame["income"].to_numpy(), "never_married": frame["never_married"].to_numpy(),
        "split": split_column.to_numpy()})
    return {"customers": customers, "items": placeholder_items(STAMP), "impressions": impressions}


def load(source: Path, out: Path, seed: int = 0) -> dict[str, Path]:
    """Read the census file under `source`, split it (seed), write the tables and contract to `out`."""
    frame = read(source)
    return write_dataset(to_tables(frame, split(frame, seed)), out, contract())
