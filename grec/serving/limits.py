"""What the ranking service accepts, in one place: each limit a refusal with a 4xx naming it, never
work the server cannot bound. Set by environment variables read when the service starts (the
docs/serving.md lists them); the defaults fit the storefront's model with room to spare.

Ids are int64 (what Feast's entity keys, numpy and torch hold): a larger id is refused, not
wrapped or overflowed. Histories longer than the model's sequence length are accepted and cut to
their most recent entries, as in training, up to MAX_HISTORY.
"""

from __future__ import annotations

import os

MAX_ID = 2**63 - 1
# An image vector's values: what any embedding model writes is within a few units; past this a
# float32 network overflows to inf and the score to NaN (found by fuzzing: 1.8e308 in a vector).
MAX_VECTOR_VALUE = 1e6


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{name}={value!r}: expected a positive whole number")
    return int(value)


def seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable `name` (else `default`)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        parsed = float(value)
    except ValueError:
        parsed = -1.0
    if not 0 < parsed < float("inf"):
        raise ValueError(f"{name}={value!r}: expected a positive number of seconds")
    return parsed


MAX_CANDIDATES = _limit("GREC_SERVE_MAX_CANDIDATES", 1000)  # /rank item_ids
MAX_SCORE_ROWS = _limit("GREC_SERVE_MAX_SCORE_ROWS", 4096)  # /score rows per request (also its batch size)
MAX_TEXT_CHARS = _limit("GREC_SERVE_MAX_TEXT_CHARS", 1000)  # a search query or an item description
MAX_HISTORY = _limit("GREC_SERVE_MAX_HISTORY", 1000)  # viewed / visited ids per row
MAX_BODY_BYTES = _limit("GREC_SERVE_MAX_BODY_BYTES", 16 << 20)  # any request body (413 beyond)
# How long a read of the online store may take before the request is a 503 naming the store: it
# answers in a few milliseconds when it is up (benchmarks/results/serving_http.md).
STORE_TIMEOUT_SECONDS = seconds("GREC_SERVE_STORE_TIMEOUT_SECONDS", 1.0)
