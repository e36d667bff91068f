"""lm.metrics: the one perplexity of a log-sum, and lm.checks: the shared type checks."""

import math

import pytest

from lm import checks, metrics


def test_perplexity_of_a_natural_log_and_of_a_log10_sum():
    assert metrics.perplexity(-100 * math.log(7.0), 100) == pytest.approx(7.0)
    assert metrics.perplexity(-200.0, 100, log10=True) == pytest.approx(100.0)
    assert metrics.LN10 == pytest.approx(math.log(10))


def test_perplexity_with_nothing_counted_or_out_of_range():
    assert math.isnan(metrics.perplexity(0.0, 0))
    assert math.isnan(metrics.perplexity(float("nan"), 5))
    assert metrics.perplexity(-1e6, 1) == math.inf  # no OverflowError


def test_checks_do_not_take_bools_for_numbers():
    assert checks.is_int(3) and not checks.is_int(True) and not checks.is_int(3.0)
    assert checks.is_real(0.5) and not checks.is_real(False)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        checks.require_int("n", 0, 1)
    with pytest.raises(ValueError, match="kind must be 'a' or 'b', got 'c'"):
        checks.require_choice("kind", "c", ("a", "b"))
    with pytest.raises(ValueError, match="kind must be one of a, b, d, got 'c'"):
        checks.require_choice("kind", "c", ("a", "b", "d"))
