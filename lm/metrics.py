"""Perplexity from a total log-probability: the one place that turns a log-sum into a ppl.

Natural log inside ``lm``; log10 at the KenLM/SRILM boundary (``LN10`` converts).
"""

from __future__ import annotations

import math

LN10 = math.log(10.0)


def perplexity(total_logprob: float, n: int, log10: bool = False) -> float:
    """exp(-total_logprob / n) (10 ** (...) with ``log10``): the perplexity of n predicted
    tokens whose log-probabilities sum to ``total_logprob``. nan when n <= 0 (nothing was
    predicted), inf beyond the float range (never an OverflowError).

    Good: ``perplexity(-230.2, 100)`` ~= 10.0; ``perplexity(-100.0, 100, log10=True)`` == 10.0.
    Bad: ``perplexity(-230.2, 100, log10=True)``: a natural-log sum read as log10 (1e2.3).
    """
    if n <= 0 or math.isnan(total_logprob):
        return math.nan
    x = -total_logprob / n * (LN10 if log10 else 1.0)
    return math.inf if x > 709 else math.exp(x)
