"""The storefront as a ranking service meets it: requests arrive, a ranking is shown, outcomes follow.

The logged tables (grec.data.simulate) are what a logging policy showed, one item per impression.
Online, a page asks the ranking service to order a candidate set, shows the first SLOTS of its
answer in the carousel's positions, and the customer clicks, adds to cart and buys, or not. This
world does that in the simulated storefront of a data folder (its simulation.json): the same
catalogue, customers, histories and funnel as the logs, so a model trained on the logs is served to
the world they came from.

* `Storefront.requests(start, end, n, seed)`: n requests in [start, end) drawn as the logs draw an
  impression's context (customer, flow, channel, history as of its time, search or page type,
  intent, query, surface), each with a candidate set: CANDIDATES draws of the logging policy for
  that context (the retrieval a ranker reorders), duplicates dropped.
* `Storefront.show(requests, ranked, seed)`: the first SLOTS items of each request's ranking shown
  at positions 0..SLOTS-1 (the logs' carousel), each outcome drawn from the true funnel
  probabilities of that item at that position; the impressions come back in the data folder's own
  layout (the contract's columns, true probabilities included) with ids from `first_id` on, ready
  to be appended to the folder (`grec data append`): the next training reads what was served.

Both are deterministic per (world, seed). The requests' event_timestamp is the time each page was
asked for; the shown impressions carry it too, so the service's log (which keeps the time a request
names) joins them on the contract's keys (customer, item, time).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from grec.data import simulate as sim
from grec.data.contract import TELECOM, list_array
from grec.data.schema import SchemaError

SLOTS = 6  # carousel positions 0..5, as in the logs
CANDIDATES = 50  # draws of the logging policy per request (fewer once duplicates are dropped)
# Streams of one world seed: the logs use spawn(5) of config.seed; requests and outcomes use their
# own keys so neither moves the other.
_REQUEST_STREAM, _OUTCOME_STREAM = 101, 102


@dataclass(frozen=True)
class Requests:
    """Pages asking to be ranked: `frame` is what a ranking service is sent (one row per request:
    request_number, event_timestamp, customer_id, flow, surface (with pages), page_id, channel,
    search_query, viewed_item_ids, visited_page_ids, candidates); the rest is the world's hidden
    state of each request (why the customer came), which the outcomes depend on."""

    frame: pd.DataFrame
    rows: sim._Rows
    intent: np.ndarray
    brand_intent: np.ndarray
    page: np.ndarray
    kind: np.ndarray
    surface: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


class Storefront:
    """The world of one simulated data folder (its SimulationConfig), rebuilt draw for draw."""

    def __init__(self, config: sim.SimulationConfig):
        if config.checkout_pages:  # its requests are drawn page by page; the checkout's rows are not
            raise ValueError("the online storefront serves the six surfaces; checkout_pages is for logs only")
        self.config = config
        world_rng, item_rng, customer_rng, impression_rng, drift_rng = np.random.default_rng(config.seed).spawn(5)
        self.world = {"click": sim._random_flow_matrices(world_rng), "atc": sim._random_flow_matrices(world_rng)}
        items = sim._make_items(item_rng, config.n_items)
        self.customers, _ = sim._make_customers(customer_rng, config.customer_count)
        known = items
        if "device_launch" in config.drift:  # online is after the launch: the whole catalogue is on sale
            items, _ = sim._launch(drift_rng, items)
        self.items = items
        # The logs' first draw: every customer's views, as the logged impressions saw them.
        self.viewed, self.viewed_pages = sim._make_histories(impression_rng, self.customers, known, config.n_pages)

    @classmethod
    def of(cls, data_dir: Path) -> Storefront:
        """The world a simulated data folder was drawn from (its simulation.json)."""
        meta = Path(data_dir) / "simulation.json"
        if not meta.exists():
            raise SchemaError(f"{meta}: not found; only a folder written by `grec simulate` has a world to serve")
        fields = {f.name for f in dataclasses.fields(sim.SimulationConfig)}
        config = {k: v for k, v in json.loads(meta.read_text())["config"].items() if k in fields}
        config["drift"] = tuple(config.get("drift", ()))
        return cls(sim.SimulationConfig(**config))

    # ------------------------------------------------------------------------------------------

    def requests(self, start: pd.Timestamp, end: pd.Timestamp, n: int, seed: int = 0) -> Requests:
        """n requests at times in [start, end) (within the world's time), each with its candidates."""
        start, end = _utc(start), _utc(end)
        if not self.config.windows.train[0] <= start < end <= self.config.end:
            raise ValueError(f"requests between {start} and {end}: the world's time is "
                             f"{self.config.windows.train[0]} to {self.config.end} (more monitor_weeks extend it)")
        rng = np.random.default_rng([self.config.seed, _REQUEST_STREAM, seed])
        ts_us = np.sort(rng.integers(start.value // 1000, end.value // 1000, n))
        rows = sim._make_rows(rng, self.customers, ts_us, dataclasses.replace(self.config, drift=()), rng)
        seq = sim._sequences(rows, self.viewed, self.viewed_pages)
        search = rng.random(n) < sim.SEARCH_SHARE[rows.flow]
        intent = sim._intents(rng, rows, self.customers, self.items, seq)
        brand_intent = sim._brand_intents(rng, rows, intent, self.customers, self.items, search)
        page_type = np.where(search, -1, rng.choice(len(sim.PAGE_TYPE_P), size=n, p=list(sim.PAGE_TYPE_P.values())))

        # CANDIDATES draws of the logging policy per request, all on the request's own page.
        each = np.repeat(np.arange(n), CANDIDATES)
        launched = after_launch = None
        if self.items.n > self.config.n_items:  # launched items are on sale from the drift's start only
            launched = np.arange(self.items.n) >= self.config.n_items
            after_launch = ts_us[each] >= self.config.drift_start.value // 1000
        drawn = sim._logging_policy(rng, _take(rows, each), intent[each], brand_intent[each], search[each],
                                    self.items, sim._sequences(_take(rows, each), self.viewed, self.viewed_pages),
                                    launched, after_launch, page_type=page_type[each])
        first = np.arange(n) * CANDIDATES  # a request's page is its first draw's (a detail page names one product)
        candidates = [list(dict.fromkeys(items.tolist())) for items in drawn.item.reshape(n, CANDIDATES)]

        query = np.full(n, "", dtype=object)
        query[search] = sim._search_queries(rng, rows.flow[search], intent[search], brand_intent[search])
        frame = pd.DataFrame({
            "request_number": np.arange(n, dtype=np.int64),
            "event_timestamp": pd.DatetimeIndex(ts_us.astype("datetime64[us]")).tz_localize("UTC"),
            "customer_id": rows.customer.astype(np.int64),
            "flow": np.array(sim.FLOWS, dtype=object)[rows.flow],
            "page_id": drawn.page[first],
            "channel": rows.channel.astype(np.int64),
            "search_query": query,
            "viewed_item_ids": list_array(seq[0], seq[1], pa.int64()).to_pandas(),
            "visited_page_ids": list_array(seq[0], seq[2], pa.int64()).to_pandas(),
            "candidates": candidates,
        })
        if self.config.pages:
            frame.insert(4, "surface", np.array(sim.SURFACES, dtype=object)[drawn.surface[first]])
        return Requests(frame, rows, intent, brand_intent, drawn.page[first], drawn.kind[first], drawn.surface[first])

    def show(self, requests: Requests, ranked: list, seed: int = 0, first_id: int = 0) -> pd.DataFrame:
        """The first SLOTS items of each request's ranking (`ranked[r]`: item ids, best first, each
        one of the request's candidates) shown at positions 0.., their outcomes drawn. Returns the
        impressions in the data folder's layout, ids from first_id, in request then position order."""
        if len(ranked) != len(requests):
            raise ValueError(f"{len(ranked)} rankings for {len(requests)} requests")
        for r, items in enumerate(ranked):
            unknown = set(items) - set(requests.frame["candidates"].iat[r])
            if unknown:
                raise ValueError(f"request {r}: ranked items {sorted(unknown)[:5]} are not among its candidates")
        shown = [np.asarray(items[:SLOTS], np.int64) for items in ranked]
        req = np.repeat(np.arange(len(requests)), [len(s) for s in shown])
        item = np.concatenate(shown) if shown else np.zeros(0, np.int64)
        position = np.concatenate([np.arange(len(s)) for s in shown]) if shown else np.zeros(0, np.int64)
        rows = _take(requests.rows, req)._replace(position=position)
        seq = sim._sequences(rows, self.viewed, self.viewed_pages)
        on_page = sim._Shown(item, requests.page[req], requests.kind[req], requests.surface[req])
        in_seq = sim._in_sequence(item, rows.seq_len, seq[0], seq[1])
        rng = np.random.default_rng([self.config.seed, _OUTCOME_STREAM, seed])
        sent = requests.frame.iloc[req].reset_index(drop=True)
        after_start = (sent["event_timestamp"] >= self.config.drift_start).to_numpy() if self.config.drift else None
        drifted = after_start if "price_change" in self.config.drift else None  # as in the logs, from the start
        concept = after_start if "concept" in self.config.drift else None
        p_click, p_atc, p_purchase = sim._probabilities(rng, rows, on_page, requests.intent[req],
                                                        requests.brand_intent[req], in_seq, self.customers,
                                                        self.items, self.world, drifted, self.config.pages, concept)
        n = len(item)
        click = rng.random(n) < p_click
        atc = click & (rng.random(n) < p_atc)
        purchase = atc & (rng.random(n) < p_purchase)
        frame = pd.DataFrame({
            "impression_id": first_id + np.arange(n, dtype=np.int64),
            "event_timestamp": sent["event_timestamp"], "customer_id": sent["customer_id"], "item_id": item,
            "flow": sent["flow"], "page_id": sent["page_id"], "channel": sent["channel"],
            "position": position.astype(np.int64), "search_query": sent["search_query"],
            "viewed_item_ids": sent["viewed_item_ids"], "visited_page_ids": sent["visited_page_ids"],
            "click": click.astype(np.int8), "add_to_cart": atc.astype(np.int8), "purchase": purchase.astype(np.int8),
            "p_click": p_click.astype(np.float32), "p_add_to_cart_given_click": p_atc.astype(np.float32),
            "p_purchase_given_add_to_cart": p_purchase.astype(np.float32),
        })
        if not self.config.pages:
            return frame[TELECOM.tables["impressions"].names()]
        frame["surface"] = sent["surface"]
        for use_case, p in sim.oracle_scores(frame).items():
            frame[sim.PAGES_ORACLES[use_case]] = p.astype(np.float32)
        return frame[sim.pages_contract().tables["impressions"].names()]


def _take(rows: sim._Rows, index: np.ndarray) -> sim._Rows:
    return sim._Rows(*(a[index] for a in rows))


def _utc(t) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
