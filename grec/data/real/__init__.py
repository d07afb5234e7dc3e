"""Adapters for real logs nobody here generated: Census-Income (KDD), the Open Bandit Dataset and
AliExpress in its published per-country layout. Each reads its source's own files (never changing
them), checks them, and maps them onto the platform's three tables with a contract.json
(grec.data.contract) saying which column feeds which input, the labels, the task vocabulary and
the source's documented split. `grec data load NAME --source DIR` writes such a folder; from there
`grec train --data`, `grec evaluate` and `grec validate` read it like any other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def placeholder_items(stamp: pd.Timestamp) -> pd.DataFrame:
    """One item for sources whose rows are not about an item (Census: a person; AliExpress: the
    item features are not told apart from the rest): one constant categorical and one constant
    numerical column, which carry nothing (the input layer needs at least one of each)."""
    return pd.DataFrame({"item_id": [0], "updated_at": [stamp], "item_kind": [0], "item_size": [np.float32(0)]})


PLACEHOLDER_ITEM_FEATURES = {"categorical": ["item_kind"], "numerical": ["item_size"]}

