"""The A/B split (grec.serving.experiment): by customer, stable, at the share asked."""

import numpy as np
import pytest

from grec.lifecycle.registry import parse_ref
from grec.serving.experiment import CHALLENGER, CHAMPION, Split


def test_a_customer_keeps_an_arm_and_the_share_holds():
    split = Split("grec-vs-trees", 0.3)
    arms = [split.arm(c) for c in range(20_000)]
    assert arms == [Split("grec-vs-trees", 0.3).arm(c) for c in range(20_000)]  # another process, the same arms
    assert [split.arm(np.int64(c)) for c in range(100)] == arms[:100]  # numpy's ids as Python's
    share = arms.count(CHALLENGER) / len(arms)
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / len(arms))
    other = [Split("next-test", 0.3).arm(c) for c in range(20_000)]
    assert 0.3 < np.mean([a != b for a, b in zip(arms, other)]) < 0.5  # a new experiment reshuffles
    assert {Split("x", 0.0).arm(c) for c in range(500)} == {CHAMPION}
    assert {Split("x", 1.0).arm(c) for c in range(500)} == {CHALLENGER}


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="between 0 and 1"):
        Split("x", 1.5)
    with pytest.raises(ValueError, match="needs a name"):
        Split("", 0.5)
    assert parse_ref("grec@challenger") == ("grec", "@challenger") and parse_ref("grec:3") == ("grec", "3")
    for bad in ("grec", "grec:latest", "@x", "grec@"):
        with pytest.raises(ValueError, match="NAME@ALIAS or NAME:VERSION"):
            parse_ref(bad)
