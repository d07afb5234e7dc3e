"""Great Expectations suites for the raw tables, built from the data contract.

Every column's role in grec.data.schema decides its expectations: keys are present and unique,
categorical codes are non-negative, flows come from the flow vocabulary, labels are 0/1 and obey
the funnel, timestamps fall in the requested window, vectors have one length. What GX cannot
check on a list column directly (lengths) is checked on derived columns named `<column>__length`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from grec.data.contract import SPLITS, TELECOM, Contract
from grec.data.schema import Role, Table, TaskVocabulary

LENGTH = "__length"
# The pandas dtypes each numeric contract dtype is read from (the readers cast them): labels may be
# booleans or any integers of 0/1, numbers any float (pandas writes float64).
FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMERIC_DTYPES = {"int64": ["int64"], "int8": ["int8", "int16", "int32", "int64", "bool"],
                  "float32": ["float32", "float64"]}
# Value ranges the storefront's column descriptions promise (column -> (min, max), None: open): the
# simulated storefront's alone; another contract's columns of the same names are other columns.
RANGES: dict[str, tuple[float | None, float | None]] = {
    "price": (0, None),
    "storage_gb": (0, None),
    "rating": (1, 5),
    "discount_pct": (0, 100),
    "tenure_months": (0, None),
    "monthly_bill": (0, None),
    "lines_on_account": (0, None),
    "device_age_months": (0, None),
    "channel": (0, 2),
    "position": (0, None),
}


@dataclass
class ValidationPolicy:
    """What "plausible" means for one delivery of data. Defaults fit the simulator's storefront."""

    start: pd.Timestamp | None = None  # impressions must be stamped in [start, end)
    end: pd.Timestamp | None = None
    now: pd.Timestamp | None = None  # nothing may be stamped after this (None: the clock when validating)
    strict_columns: bool = False  # a column the contract does not name is an error, not a warning
    max_staleness: pd.Timedelta = pd.Timedelta(days=2)  # newest impression no older than end - this
    n_pages: int = 24  # page ids are 0..n_pages-1
    image_dim: int | None = None  # None: the length most rows have
    min_rows_per_task: int = 100  # (example, task) rows per flow x use case
    min_positives_per_task: int = 3
    # Mean of each label over all impressions: real logs have clicks a few percent of impressions.
    # Labels of other contracts (Census income, say) are checked for 0/1 only.
    label_rates: dict[str, tuple[float, float]] = field(default_factory=lambda: {
        "click": (0.002, 0.25), "add_to_cart": (0.0002, 0.1), "purchase": (0.00002, 0.05)})


def validation_frame(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    """The table plus derived `<list column>__length` columns GX can check."""
    out = frame.copy()
    for col in table.columns:
        if col.dtype in ("list<int64>", "list<string>", "vector<float32>") and col.name in frame:
            out[col.name + LENGTH] = frame[col.name].map(lambda v: -1 if v is None else len(v)).astype(np.int64)
    return out


def task_counts(impressions: pd.DataFrame, tasks: TaskVocabulary = TELECOM.tasks, flow: str = "flow") -> pd.DataFrame:
    """One row per task: its (example, task) rows and positives, as training will build them
    (`flow`: the flow's column in `impressions`; other task token columns under their names)."""
    rows = []
    tokens = [impressions[flow].astype(str), *(impressions[t].astype(str) for t in tasks.tokens[1:])]
    routes = tokens[0] if len(tokens) == 1 else tokens[0].str.cat(tokens[1:], sep="+")
    for name in tasks.flows:
        of_flow = impressions[routes == name]
        for use_case in tasks.use_cases:
            population = tasks.populations.get(use_case)
            pop = of_flow if population is None else of_flow[of_flow[population] == 1]
            rows.append({"task": f"{name}+{use_case}", "rows": len(pop),
                         "positives": int(pop[tasks.labels[use_case]].sum())})
    return pd.DataFrame(rows)


def _mode_length(frame: pd.DataFrame, column: str) -> int | None:
    lengths = frame[column + LENGTH]
    return int(lengths.mode().iloc[0]) if len(lengths) else None


def table_expectations(table: Table, frame: pd.DataFrame, policy: ValidationPolicy, contract: Contract = TELECOM) -> list:
    """Expectations for one raw table of `contract`; `frame` is its validation_frame (for data-derived sizes)."""
    import great_expectations.expectations as gxe

    stamp = next(c.name for c in table.columns if c.role == Role.TIMESTAMP)
    storefront = contract == TELECOM  # its ranges, page count and label rates; no other world's
    ex = [gxe.ExpectTableColumnsToMatchSet(column_set=table.names(), exact_match=False)]
    ex.append(gxe.ExpectColumnValuesToBeUnique(column=table.key) if table.name == "impressions" else
              # A customer or an item may have several snapshots; one per timestamp.
              gxe.ExpectCompoundColumnsToBeUnique(column_list=[table.key, stamp]))
    for col in table.columns:
        # No column of the contract is nullable (NaN counts as missing): refused here by column,
        # count and example rows, not found after training as a NaN score.
        ex.append(gxe.ExpectColumnValuesToNotBeNull(column=col.name))
        if col.dtype in NUMERIC_DTYPES:
            ex.append(gxe.ExpectColumnValuesToBeInTypeList(column=col.name, type_list=NUMERIC_DTYPES[col.dtype]))
        if col.dtype == "float32":
            # Infinities, like NaN, are not values: they reach the model as inf and every loss and
            # score as NaN. Nor is what float32 cannot hold (the model reads float32: it becomes inf).
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX))
        if col.role == Role.KEY and col.dtype == "int64":  # what the ranking service takes (categorical values are any)
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=0, max_value=None))
        if storefront and col.name == "page_id":
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=0, max_value=policy.n_pages - 1))
        if storefront and col.name in RANGES:
            low, high = RANGES[col.name]
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=low, max_value=high))
        if col.role == Role.FLOW:  # the flow, or another task token column: its values in the routes
            tokens = contract.tasks.tokens  # the flow under the user's name, other tokens under their own
            values = contract.tasks.token_values[tokens.index(col.name) if col.name in tokens[1:] else 0]
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(values)))
        if col.role == Role.SPLIT:
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(SPLITS)))
        if col.role == Role.LABEL:
            ex.append(gxe.ExpectColumnValuesToBeInSet(column=col.name, value_set=[0, 1]))
            if storefront and col.name in policy.label_rates:
                low, high = policy.label_rates[col.name]
                ex.append(gxe.ExpectColumnMeanToBeBetween(column=col.name, min_value=low, max_value=high))
        if col.role == Role.ORACLE:
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=col.name, min_value=0, max_value=1))
        if col.role == Role.ITEM_IMAGE:
            dim = policy.image_dim or _mode_length(frame, col.name)
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=col.name + LENGTH, min_value=dim, max_value=dim))
    if table.name == "impressions":
        # The funnel (the storefront's: no add-to-cart without a click, no purchase without either).
        for a, b in contract.funnel:
            ex.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True))
        if contract.has("histories"):
            viewed, visited = (table.names(role)[0] for role in (Role.SEQUENCE_ITEMS, Role.SEQUENCE_PAGES))  # the file's names
            ex.append(gxe.ExpectColumnPairValuesToBeEqual(column_A=viewed + LENGTH, column_B=visited + LENGTH))
        if policy.start is not None or policy.end is not None:
            # GX compares timestamps exclusive of nothing: the end is a bound, so subtract 1 us.
            end = None if policy.end is None else policy.end - pd.Timedelta(microseconds=1)
            ex.append(gxe.ExpectColumnValuesToBeBetween(column=stamp, min_value=policy.start, max_value=end))
        if policy.end is not None:
            ex.append(gxe.ExpectColumnMaxToBeBetween(column=stamp, min_value=policy.end - policy.max_staleness))
    elif policy.end is not None:
        # Profiles and catalogue entries cannot come from after the window they describe.
        ex.append(gxe.ExpectColumnValuesToBeBetween(column=stamp, max_value=policy.end))
    # Nothing is stamped in the future, window or not (a clock error, or a shifted export).
    now = policy.now if policy.now is not None else pd.Timestamp.now(tz="UTC")
    ex.append(gxe.ExpectColumnValuesToBeBetween(column=stamp, max_value=now))
    return ex


def task_expectations(policy: ValidationPolicy) -> list:
    import great_expectations.expectations as gxe

    return [
        gxe.ExpectColumnValuesToBeBetween(column="rows", min_value=policy.min_rows_per_task),
        gxe.ExpectColumnValuesToBeBetween(column="positives", min_value=policy.min_positives_per_task),
    ]

