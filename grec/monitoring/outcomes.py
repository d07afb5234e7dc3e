"""What was served meets what happened: the prediction log's rankings joined with the impressions
logged later, so a served candidate's outcome (clicked, bought) is known at the place it was shown.

A /rank request's log row names the customer, the candidates with their scores and ranks, and the
time the page asked (`event_timestamp`, the caller's or the service's clock). The page then shows
some of the candidates and logs an impression per item shown, with the contract's keys: customer,
item and time. An impression is matched to the latest ranking of the same customer and item at or
before it, at most `window` earlier (the page's clock and the service's differ by little; a later
ranking of the same item is another page view). Each served candidate is then `shown` (its
impression, position and labels attached) or not (ranked but not shown: no label, not a negative).

Nothing here knows a dataset: the keys are the contract's core columns, the labels the task
vocabulary's.
"""

from __future__ import annotations

import pandas as pd

from grec.data.schema import TaskVocabulary

KEYS = ("customer_id", "item_id")


def join_outcomes(served: pd.DataFrame, impressions: pd.DataFrame, tasks: TaskVocabulary,
                  window: pd.Timedelta = pd.Timedelta(minutes=10)) -> pd.DataFrame:
    """`served`: read_log's /rank rows (one per candidate); `impressions`: the logged impressions
    (the contract's columns). Returns the served rows with `shown`, `impression_id`, `position`
    (where the contract has one) and each label column of the tasks (missing where not shown)."""
    served = served[served["endpoint"] == "rank"] if "endpoint" in served else served
    labels = [c for c in dict.fromkeys(tasks.labels.values()) if c in impressions]
    extra = [c for c in ("position",) if c in impressions]
    if served.empty:
        return served.assign(shown=pd.Series(dtype=bool), impression_id=pd.Series(dtype="Int64"))
    left = impressions[["impression_id", "event_timestamp", *KEYS, *extra, *labels]].copy()
    right = served[["request_id", "event_timestamp", *KEYS]].copy()
    for frame in (left, right):
        frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype("datetime64[us, UTC]")
    for key in KEYS:  # matched as text: the log may hold an id as an object where the table has int64
        left[key], right[key] = _text(left[key]), _text(right[key])
    matched = pd.merge_asof(left.sort_values("event_timestamp"), right.sort_values("event_timestamp"),
                            on="event_timestamp", by=list(KEYS), direction="backward", tolerance=window)
    matched = matched.dropna(subset=["request_id"]).drop_duplicates(["request_id", *KEYS])  # one impression each
    out = served.assign(**{key: _text(served[key]) for key in KEYS})
    out = out.merge(matched[["request_id", *KEYS, "impression_id", *extra, *labels]].rename(
        columns={"position": "shown_position"}), on=["request_id", *KEYS], how="left")
    out["shown"] = out["impression_id"].notna()
    out["impression_id"] = out["impression_id"].astype("Int64")
    for key in KEYS:  # the served rows' own ids back
        out[key] = served[key].to_numpy()
    return out


def _text(ids: pd.Series) -> pd.Series:
    """Ids as text to match on: numpy's as Python's, and an integer id upcast to float beside
    missing values (a log of several layouts) as the integer."""
    def one(v):
        v = v.item() if hasattr(v, "item") else v
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    return ids.map(one)
