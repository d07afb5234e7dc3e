"""The task figures promise only what they draw: a dashed true-probability line only where the data
has true probabilities (simulated), never on real logs."""

import numpy as np
import pytest

from grec import plots


@pytest.mark.parametrize("with_oracle", [True, False])
def test_the_titles_promise_a_dashed_line_only_where_one_is_drawn(with_oracle):
    rng = np.random.default_rng(0)
    label = (rng.random(200) < 0.3).astype(np.int8)
    prob = rng.random(200)
    scores = {"AAL+CTR": (label, prob, prob if with_oracle else None)}
    for draw in (plots.roc_by_task, plots.pr_by_task):
        fig = draw(scores)
        dashed = [line for ax in fig.axes for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert ("dashed" in fig._suptitle.get_text()) == with_oracle == bool(dashed)
        plots.plt.close(fig)
