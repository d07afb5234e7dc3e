"""An A/B split of the ranking service's traffic: the champion, and a challenger for a share of customers.

A customer's arm is a stable hash of the experiment's name and the customer id (SHA-256, not
Python's per-process `hash`): the same customer lands in the same arm on every request, in every
worker and after every restart, so what an arm's customers do can be credited to its model; a new
experiment name reshuffles who sees what. The split is by customer, not by request: a customer
who saw both models' rankings would mix their effects.

The service reads GREC_SERVE_CHALLENGER (`name@alias` or `name:version` of the registry),
GREC_SERVE_CHALLENGER_SHARE (0 to 1, default 0.5) and GREC_SERVE_EXPERIMENT (default the
challenger's name); each logged request names its `arm` and `experiment`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Split:
    experiment: str
    challenger_share: float = 0.5

    def __post_init__(self) -> None:
        if not self.experiment:
            raise ValueError("an experiment needs a name (it seeds who sees which arm)")
        if not 0.0 <= self.challenger_share <= 1.0:
            raise ValueError(f"challenger share {self.challenger_share}: must be between 0 and 1")

    def arm(self, customer_id) -> str:
        """CHAMPION or CHALLENGER for this customer, the same on every call."""
        key = customer_id.item() if hasattr(customer_id, "item") else customer_id  # numpy's int64 as Python's
        digest = hashlib.sha256(f"{self.experiment}\0{key}".encode()).digest()
        return CHALLENGER if int.from_bytes(digest[:8], "big") / 2 ** 64 < self.challenger_share else CHAMPION
