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

from grec.data.real import absent_inputs
from grec.data.schema import SchemaError

CAMPAIGNS = ("all", "men", "women")
POLICIES = ("random", "bts")
USER_FEATURES = [f"user_feature_{i}" for i in range(4)]
ITEM_FEATURES = [f"item_feature_{i}" for i in range(4)]  # item_feature_0 numerical, 1-3 hashed categories


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


def task_vocabulary():
    """A flow per campaign, one use case: the click."""
    from grec.data.schema import TaskVocabulary

    return TaskVocabulary(flows=tuple(c.upper() for c in CAMPAIGNS), use_cases=("CTR",), labels={"CTR": "click"},
                          populations={"CTR": None})


def _codes(values: pd.Series) -> np.ndarray:
    return pd.Categorical(values).codes.astype(np.int64)  # hashed strings -> codes, sorted: no label in the mapping


def model_frame(impressions: pd.DataFrame, items: pd.DataFrame, split_column: pd.Series) -> tuple[pd.DataFrame, dict]:
    """Impressions in the training-set layout, and the FeatureSpec settings that read them: the
    campaign as the flow, the hashed user features and the position as context categoricals, the
    user's affinity to the shown item as context numerical, the item (one id per campaign and item)
    with its features; no search or history; the split as an explicit column."""
    item_key = impressions["campaign"] + ":" + impressions["item_id"].astype(str)
    catalogue = items.assign(key=items["campaign"] + ":" + items["item_id"].astype(str)).set_index("key")
    item_ids = pd.Categorical(item_key, categories=catalogue.index).codes.astype(np.int64)
    shown = catalogue.loc[item_key]
    n = len(impressions)
    out = pd.DataFrame({c: _codes(impressions[c]) for c in USER_FEATURES})
    out = out.assign(
        position=impressions["position"].to_numpy().astype(np.int64), affinity=impressions["affinity"].astype(np.float32).to_numpy(),
        impression_id=np.arange(n), event_timestamp=impressions["timestamp"].to_numpy(),
        flow=impressions["campaign"].str.upper().to_numpy(), item_id=item_ids,
        item_feature_0=shown["item_feature_0"].astype(np.float32).to_numpy(),
        **{c: _codes(shown[c]) for c in ITEM_FEATURES[1:]},
        **absent_inputs(n), click=impressions["click"].to_numpy(), split=split_column.to_numpy())
    spec = {"context_categorical": [*USER_FEATURES, "position"], "context_numerical": ["affinity"],
            "item_categorical": ITEM_FEATURES[1:], "item_numerical": ["item_feature_0"], "tasks": task_vocabulary()}
    return out, spec
