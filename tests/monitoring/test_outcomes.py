"""Served meets happened (grec.monitoring.outcomes): each served candidate matched to the impression
that showed it, at its position, on the contract's keys and time."""

import pandas as pd

from grec.data.schema import TaskVocabulary
from grec.monitoring.outcomes import join_outcomes

TASKS = TaskVocabulary(("AAL", "EUP"), ("CTR", "CVR"), {"CTR": "click", "CVR": "purchase"}, {"CTR": None, "CVR": "click"})
T0 = pd.Timestamp("2026-09-08 10:00", tz="UTC")


def served_rows() -> pd.DataFrame:
    """Two requests of customer 7 (items 1-3, then 1 and 4 again ten minutes later) and one of customer 8."""
    rows = [("r1", T0, 7, "AAL", 1, 0), ("r1", T0, 7, "AAL", 2, 1), ("r1", T0, 7, "AAL", 3, 2),
            ("r2", T0 + pd.Timedelta(minutes=10), 7, "AAL", 4, 0), ("r2", T0 + pd.Timedelta(minutes=10), 7, "AAL", 1, 1),
            ("r3", T0, 8, "EUP", 1, 0)]
    frame = pd.DataFrame(rows, columns=["request_id", "event_timestamp", "customer_id", "flow", "item_id", "rank"])
    return frame.assign(endpoint="rank", use_case="CTR", score=0.5)


def impressions(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["impression_id", "event_timestamp", "customer_id", "item_id", "position",
                                        "click", "purchase"])
    return frame.assign(flow="AAL")


def test_each_served_candidate_meets_its_impression_at_its_position():
    shown = impressions([
        (100, T0 + pd.Timedelta(seconds=2), 7, 1, 0, 1, 0),  # r1's first, clicked
        (101, T0 + pd.Timedelta(seconds=2), 7, 2, 1, 0, 0),  # r1's second
        (102, T0 + pd.Timedelta(minutes=10, seconds=1), 7, 4, 0, 1, 1),  # r2's first: bought
        (103, T0 + pd.Timedelta(minutes=10, seconds=1), 7, 1, 1, 0, 0),  # item 1 again: r2's, not r1's
        (104, T0 + pd.Timedelta(hours=3), 8, 1, 0, 1, 0),  # three hours after r3: another page view
        (105, T0, 9, 1, 0, 1, 0),  # never served
    ])
    joined = join_outcomes(served_rows(), shown, TASKS).set_index(["request_id", "item_id"])
    assert joined["shown"].to_dict() == {("r1", 1): True, ("r1", 2): True, ("r1", 3): False, ("r2", 4): True,
                                         ("r2", 1): True, ("r3", 1): False}
    assert joined["impression_id"].dropna().to_dict() == {("r1", 1): 100, ("r1", 2): 101, ("r2", 4): 102, ("r2", 1): 103}
    shown_rows = joined[joined["shown"]]
    assert (shown_rows["rank"] == shown_rows["shown_position"]).all()  # the place it was ranked is where it was seen
    assert joined.loc[("r2", 4), "purchase"] == 1 and joined.loc[("r1", 1), "click"] == 1
    assert joined.loc[("r1", 3), ["click", "purchase"]].isna().all()  # ranked, not shown: no label, not a negative


def test_ids_logged_as_one_type_and_stored_as_another_still_meet():
    served = served_rows().astype({"customer_id": object, "item_id": object})
    shown = impressions([(100, T0, 7, 1, 0, 1, 0)]).astype({"customer_id": "int64", "item_id": "int64"})
    joined = join_outcomes(served, shown, TASKS)
    assert joined["shown"].sum() == 1 and joined["customer_id"].tolist() == served["customer_id"].tolist()


def test_a_window_with_nothing_served_joins_nothing():
    joined = join_outcomes(served_rows().iloc[:0], impressions([(100, T0, 7, 1, 0, 1, 0)]), TASKS)
    assert joined.empty and "shown" in joined
