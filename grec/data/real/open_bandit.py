"""The Open Bandit Dataset, small version (ZOZOTOWN fashion e-commerce; Saito et al.,
arXiv:2008.07146): real impressions with clicks, 2019-11-24 to 2019-11-30.

Three campaigns (all, men, women) are three recommendation scenarios, each with its own item set;
two logging policies: `random` (uniform: unbiased for evaluation) and `bts` (Bernoulli Thompson
sampling). The split trains on the Thompson-sampling logs and the first days of the random logs,
validates on the random logs of the day before the test days, and tests on the last `test_days`
days of the random logs (unbiased).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from grec.data.contract import Contract, write_dataset
from grec.data.schema import SchemaError, TaskVocabulary

CAMPAIGNS = ("all", "men", "women")
POLICIES = ("random", "bts")
USER_FEATURES = [f"user_feature_{i}" for i in range(4)]
ITEM_FEATURES = [f"item_feature_{i}" for i in range(4)]  # item_feature_0 numerical, 1-3 hashed categories
SOURCE = ("Open Bandit Dataset, small version (ZOZOTOWN; Saito et al., arXiv:2008.07146): 3 campaigns as "
          "flows, click as CTR; train on the Thompson-sampling logs and the random logs before the validation day, "
          "validate on the random logs of the day before the test days, test on the random logs of the last days (unbiased).")


def _read_csv(path: Path, required: list[str]) -> pd.DataFrame:
    if not path.exists():
        raise SchemaError(f"{path}: file not found (Open Bandit Dataset layout: <policy>/<campaign>/<campaign>.csv)")
    frame = pd.read_csv(path, index_col=0)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise SchemaError(f"{path}: missing columns {missing}")
    return frame


def read(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(impressions, items) over every policy and campaign. Impressions: policy, campaign,
    timestamp (UTC), item_id (within its campaign), position (1-3), click, propensity_score, the
    user features, and `affinity`: the user's affinity to the item shown. Items: campaign, item_id
    and the item features (from the random logs' item_context.csv; the bts copy is the same)."""
    folder = Path(folder)
    parts, items = [], []
    for campaign in CAMPAIGNS:
        context = _read_csv(folder / "random" / campaign / "item_context.csv", ["item_id", *ITEM_FEATURES])
        items.append(context.assign(campaign=campaign)[["campaign", "item_id", *ITEM_FEATURES]])
        for policy in POLICIES:
            path = folder / policy / campaign / f"{campaign}.csv"
            frame = _read_csv(path, ["timestamp", "item_id", "position", "click", "propensity_score", *USER_FEATURES])
            affinity = frame[[f"user-item_affinity_{i}" for i in range(len(context))]].to_numpy()
            item = frame["item_id"].to_numpy()
            if item.min() < 0 or item.max() >= len(context):
                raise SchemaError(f"{path}: item_id outside 0..{len(context) - 1} (the campaign's item_context.csv)")
            parts.append(pd.DataFrame({
                "policy": policy, "campaign": campaign, "timestamp": pd.to_datetime(frame["timestamp"], utc=True),
                "item_id": item, "position": frame["position"].to_numpy(), "click": frame["click"].astype(np.int8).to_numpy(),
                "propensity_score": frame["propensity_score"].to_numpy(),
                **{c: frame[c].to_numpy() for c in USER_FEATURES},
                "affinity": affinity[np.arange(len(frame)), item],
            }))
    return pd.concat(parts, ignore_index=True), pd.concat(items, ignore_index=True)


def split(impressions: pd.DataFrame, test_days: int = 2) -> pd.Series:
    """'train' / 'valid' / 'test' per impression (see the module docstring)."""
    day = impressions["timestamp"].dt.floor("D")
    random = impressions["policy"] == "random"
    last = day.max()
    test_start = last - pd.Timedelta(days=test_days - 1)
    valid_day = test_start - pd.Timedelta(days=1)
    out = np.where(random & (day >= test_start), "test", np.where(random & (day == valid_day), "valid", "train"))
    out = np.where(~random & (day >= valid_day), "train", out)  # Thompson-sampling rows all train
    return pd.Series(out, index=impressions.index, name="split")


def task_vocabulary() -> TaskVocabulary:
    """A flow per campaign, one use case: the click."""
    return TaskVocabulary(flows=tuple(c.upper() for c in CAMPAIGNS), use_cases=("CTR",), labels={"CTR": "click"},
                          populations={"CTR": None})


def contract() -> Contract:
    """Users (the hashed user features) as customers; position and the user's affinity to the
    shown item as impression context; each campaign's items with their features."""
    return Contract.define("open-bandit", {
        "customers": {"categorical": USER_FEATURES},
        "impressions": {"categorical": ["position"], "numerical": ["affinity"]},
        "items": {"categorical": ITEM_FEATURES[1:], "numerical": ITEM_FEATURES[:1]},
    }, task_vocabulary(), split="split", source=SOURCE, inputs=())


def _codes(values: pd.Series) -> np.ndarray:
    return pd.Categorical(values).codes.astype(np.int64)  # hashed strings -> codes, sorted: no label in the mapping


def to_tables(impressions: pd.DataFrame, items: pd.DataFrame, split_column: pd.Series) -> dict[str, pd.DataFrame]:
    """The logs as the platform's tables. The dataset has no user id: a customer is one
    combination of the four hashed user features. An item is a (campaign, item) pair, ids in
    campaign order; the campaign is the flow. Customer and item snapshots are stamped at the
    start of the first day (known before every impression)."""
    first = impressions["timestamp"].min().floor("D")
    users = pd.DataFrame({c: _codes(impressions[c]) for c in USER_FEATURES})
    customer_id = users.groupby(USER_FEATURES, sort=True).ngroup().to_numpy().astype(np.int64)
    customers = users.assign(customer_id=customer_id).drop_duplicates("customer_id").sort_values("customer_id")
    catalogue = items.assign(key=items["campaign"] + ":" + items["item_id"].astype(str))
    item_id = pd.Categorical(impressions["campaign"] + ":" + impressions["item_id"].astype(str),
                             categories=catalogue["key"]).codes.astype(np.int64)
    n = len(impressions)
    return {
        "customers": customers.assign(updated_at=first).reset_index(drop=True),
        "items": pd.DataFrame({"item_id": np.arange(len(catalogue)), "updated_at": first,
                               ITEM_FEATURES[0]: catalogue[ITEM_FEATURES[0]].astype(np.float32).to_numpy(),
                               **{c: _codes(catalogue[c]) for c in ITEM_FEATURES[1:]}}),
        "impressions": pd.DataFrame({
            "impression_id": np.arange(n), "event_timestamp": impressions["timestamp"].array, "customer_id": customer_id,
            "item_id": item_id, "flow": impressions["campaign"].str.upper().to_numpy(),
            "position": impressions["position"].to_numpy().astype(np.int64),
            "affinity": impressions["affinity"].astype(np.float32).to_numpy(),
            "click": impressions["click"].to_numpy(), "split": split_column.to_numpy()}),
    }


def load(source: Path, out: Path, test_days: int = 2) -> dict[str, Path]:
    """Read the dataset under `source`, split it, write the tables and contract to `out`."""
    impressions, items = read(source)
    return write_dataset(to_tables(impressions, items, split(impressions, test_days)), out, contract())
