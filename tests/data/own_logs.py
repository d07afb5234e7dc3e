"""A user's own logs, as `grec data init` meets them: other flows, labels and feature names than the
storefront's, no search text, no histories, no item descriptions or image vectors, written with
pyarrow in the contract's exact types (int64 codes, float32 numbers, int8 labels, UTC times).

Clicks depend on the slot, the item's genre, the customer's segment (and which genres that
segment likes), country and the flow; purchases (only after a click) on the price and the
customer's spend, so a model has something to learn. Every flow has clicks and purchases in the last week (the test window).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FLOWS = ("WEB", "APP", "EMAIL")
START = pd.Timestamp("2026-03-02", tz="UTC")  # a Monday; four weeks from here
DAYS = 28
USE_CASE_ARGS = ("--use-case", "CLICK=clicked", "--use-case", "BUY=bought", "--funnel", "clicked,bought")
FEATURES = {"customers": {"categorical": ["segment", "country"], "numerical": ["spend"]},
            "items": {"categorical": ["genre"], "numerical": ["price_eur"]},
            "impressions": {"categorical": ["slot"], "numerical": []}}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def own_logs(n_impressions: int = 2000, seed: int = 0, n_customers: int = 200, n_items: int = 40) -> dict[str, pa.Table]:
    """The three tables as pyarrow Tables with the contract's arrow types."""
    rng = np.random.default_rng(seed)
    stamp = pa.timestamp("us", tz="UTC")
    profile_time = (START - pd.Timedelta(days=1)).to_pydatetime()

    segment = rng.integers(0, 4, n_customers)
    country = rng.integers(0, 6, n_customers)
    spend = rng.lognormal(3.0, 0.6, n_customers).astype(np.float32)
    customers = pa.table({
        "customer_id": pa.array(np.arange(n_customers), pa.int64()),
        "updated_at": pa.array([profile_time] * n_customers, stamp),
        "segment": pa.array(segment, pa.int64()), "country": pa.array(country, pa.int64()),
        "spend": pa.array(spend, pa.float32())})

    genre = rng.integers(0, 5, n_items)
    price = rng.lognormal(3.5, 0.5, n_items).astype(np.float32)
    items = pa.table({
        "item_id": pa.array(np.arange(n_items), pa.int64()),
        "updated_at": pa.array([profile_time] * n_items, stamp),
        "genre": pa.array(genre, pa.int64()), "price_eur": pa.array(price, pa.float32())})

    n = n_impressions
    seconds = np.sort(rng.uniform(0, DAYS * 86400, n))
    when = START + pd.to_timedelta(seconds, unit="s")
    cust = rng.integers(0, n_customers, n)
    item = rng.integers(0, n_items, n)
    flow = rng.choice(FLOWS, n, p=[0.45, 0.35, 0.20])
    slot = rng.integers(0, 5, n)
    # What a model can learn: strong main effects (slot, genre, segment, flow) and a taste
    # interaction (who likes which genre) on top.
    genre_effect = np.array([0.9, -0.8, 0.3, -0.4, 0.0])
    segment_effect = np.array([0.5, -0.5, 0.0, 0.3])
    taste = np.array([[0.8, -0.6, 0.0, -0.4, 0.2], [-0.5, 0.8, -0.3, 0.0, -0.2],
                      [0.0, -0.3, 0.8, -0.6, 0.0], [-0.4, 0.2, -0.5, 0.8, 0.4]])
    flow_effect = {"WEB": 0.0, "APP": 0.4, "EMAIL": -0.5}
    click_logit = (-0.4 - 0.7 * slot + genre_effect[genre[item]] + segment_effect[segment[cust]]
                   + taste[segment[cust], genre[item]] + 0.2 * (country[cust] % 3 - 1) + np.vectorize(flow_effect.get)(flow))
    clicked = rng.random(n) < _sigmoid(click_logit)
    buy_logit = 0.2 + 1.4 * (np.log(spend[cust]) - 3.0) - 1.6 * (np.log(price[item]) - 3.5)
    bought = clicked & (rng.random(n) < _sigmoid(buy_logit))
    # Positives in every flow in the last week, for both labels (the test window has every task).
    last_week = seconds >= (DAYS - 7) * 86400
    for f in FLOWS:
        rows = np.flatnonzero(last_week & (flow == f))
        short = 3 - int(bought[rows].sum())
        if short > 0:
            extra = rng.choice(rows[~bought[rows]], short, replace=False)
            clicked[extra] = bought[extra] = True
    impressions = pa.table({
        "impression_id": pa.array(np.arange(n), pa.int64()),
        "event_timestamp": pa.array(when.to_pydatetime(), stamp),
        "customer_id": pa.array(cust, pa.int64()), "item_id": pa.array(item, pa.int64()),
        "flow": pa.array(flow.tolist(), pa.string()), "slot": pa.array(slot, pa.int64()),
        "clicked": pa.array(clicked.astype(np.int8), pa.int8()), "bought": pa.array(bought.astype(np.int8), pa.int8())})
    return {"customers": customers, "items": items, "impressions": impressions}


def write_own_logs(folder: Path, n_impressions: int = 2000, seed: int = 0) -> Path:
    """Write customers.parquet, items.parquet and impressions.parquet (no contract.json) into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in own_logs(n_impressions, seed).items():
        pq.write_table(table, folder / f"{name}.parquet")
    return folder


# The same logs as a music service names them: its own files and its own name for every core column.
NAMED_FILES = {"customers": "listeners.parquet", "items": "tracks.parquet", "impressions": "plays.parquet"}
NAMED_COLUMNS = {
    "customers": {"customer_id": "listener_id", "updated_at": "profile_at"},
    "items": {"item_id": "track_id", "updated_at": "catalogued_at"},
    "impressions": {"impression_id": "play_id", "event_timestamp": "shown_at", "customer_id": "listener_id",
                    "item_id": "track_id", "flow": "surface"},
}


def write_named_logs(folder: Path, n_impressions: int = 2000, seed: int = 0) -> Path:
    """`own_logs` under the music service's names (NAMED_FILES, NAMED_COLUMNS), no contract.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, table in own_logs(n_impressions, seed).items():
        renames = NAMED_COLUMNS[name]
        pq.write_table(table.rename_columns([renames.get(c, c) for c in table.column_names]), folder / NAMED_FILES[name])
    return folder


# The same logs as pandas writes them by default, named as the music service names them: string
# and boolean categoricals, string ids of any size, int ids past any embedding table, nanosecond
# times, bool labels, float64 numbers and list<string> histories (the listener's last plays and
# their surfaces).
PANDAS_FILES = NAMED_FILES
PANDAS_COLUMNS = ["--column", "flow=surface", "--column", "viewed_item_ids=recent_tracks",
                  "--column", "visited_page_ids=recent_surfaces"]
PLANS = np.array(["free", "student", "family", "premium"], dtype=object)
COUNTRIES = np.array(["FR", "DE", "AT", "IT", "ES", "PT"], dtype=object)
GENRES = np.array(["jazz", "rock", "pop", "folk", "techno"], dtype=object)


def pandas_logs(n_impressions: int = 2000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """`own_logs` as a team's pandas frames (see above), the same rows and signal."""
    tables = {name: t.to_pandas() for name, t in own_logs(n_impressions, seed).items()}
    rng = np.random.default_rng(seed + 100)
    customers, items, imp = tables["customers"], tables["items"], tables["impressions"]
    listener = np.array([f"listener-{v:012d}" for v in rng.choice(10**12, len(customers), replace=False)], dtype=object)
    track = np.array([f"trk_{v}" for v in rng.choice(10**7, len(items), replace=False)], dtype=object)
    listeners = pd.DataFrame({
        "listener_id": listener, "profile_at": customers["updated_at"].astype("datetime64[ns, UTC]"),
        "plan": PLANS[customers["segment"]], "country": COUNTRIES[customers["country"]],
        "spend": customers["spend"].astype(np.float64)})
    tracks = pd.DataFrame({
        "track_id": track, "catalogued_at": items["updated_at"].astype("datetime64[ns, UTC]"),
        "genre": GENRES[items["genre"]], "price_eur": items["price_eur"].astype(np.float64),
        "explicit": rng.random(len(items)) < 0.3})  # a boolean categorical
    plays = pd.DataFrame({
        "play_id": 10**12 + imp["impression_id"].to_numpy() * 7, "shown_at": imp["event_timestamp"].astype("datetime64[ns, UTC]"),
        "listener_id": listener[imp["customer_id"]], "track_id": track[imp["item_id"]], "surface": imp["flow"],
        "slot": imp["slot"], "clicked": imp["clicked"].astype(bool), "bought": imp["bought"].astype(bool)})
    recent, surfaces, last = [], [], {}
    for who, what, where in zip(plays["listener_id"], plays["track_id"], plays["surface"]):
        before = last.get(who, [])
        recent.append([t for t, _ in before])
        surfaces.append([s for _, s in before])
        last[who] = (before + [(what, where)])[-3:]
    plays["recent_tracks"], plays["recent_surfaces"] = recent, surfaces
    return {"customers": listeners, "items": tracks, "impressions": plays}


def write_pandas_logs(folder: Path, n_impressions: int = 2000, seed: int = 0, later: Path | None = None,
                      later_days: int = 0) -> Path:
    """`pandas_logs` written with `DataFrame.to_parquet` as it is; with `later`, the impressions of the
    last `later_days` go there instead, as a batch that arrives after the rest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = pandas_logs(n_impressions, seed)
    if later is not None:
        plays = frames["impressions"]
        cut = plays["shown_at"] >= START + pd.Timedelta(days=DAYS - later_days)
        Path(later).mkdir(parents=True, exist_ok=True)
        plays[cut].reset_index(drop=True).to_parquet(Path(later) / PANDAS_FILES["impressions"])
        frames["impressions"] = plays[~cut].reset_index(drop=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / PANDAS_FILES[name])
    return folder
