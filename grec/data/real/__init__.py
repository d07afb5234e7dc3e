"""Readers for real logs nobody here generated: Census-Income (KDD), the Open Bandit Dataset and
AliExpress in its published per-country layout. Each returns plain frames with the source's own
columns cleaned, its task labels, and a documented split; the files are only read, never changed.
"""

import numpy as np


def absent_inputs(n: int) -> dict:
    """Columns for the inputs a real source does not have, for n rows: no search query, no item
    description or image vector, no behaviour history. Constant, so they carry nothing."""
    return {"search_query": "", "description": "", "image_embedding": [np.zeros(1, np.float32)] * n,
            "viewed_item_ids": [np.zeros(0, np.int64)] * n, "visited_page_ids": [np.zeros(0, np.int64)] * n}
