"""Argument checks at the Python API's boundary: the wrong type is a TypeError naming the
argument, raised before any library internals run (``lm.api`` and ``lm.perplexity`` call these
on their first line).

    >>> model.score(["the", "cat"])   # TypeError: sentence must be str, not list (...)
    >>> model.score(b"the cat")       # TypeError: sentence must be str, not bytes (...)
    >>> lm.perplexity(model, b"x")    # TypeError: lines_or_path must be ...
    >>> model.generate(greedy="no")   # TypeError: greedy must be True or False, got 'no'
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np


def sentence(value, name: str = "sentence") -> str:
    """``value`` if it is a str, else TypeError (a list of words is not a sentence)."""
    if isinstance(value, str):
        return value
    hint = ""
    if isinstance(value, (list, tuple)):
        hint = " (one sentence is one str, words separated by spaces: ' '.join(words))"
    elif isinstance(value, (bytes, bytearray)):
        hint = " (decode it first: value.decode('utf-8'))"
    raise TypeError(f"{name} must be str, not {type(value).__name__}{hint}")


def flag(value, name: str) -> bool:
    """``value`` if it is True or False (numpy's too), else TypeError: "no" is not False."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def score_args(sentence_, bos, eos) -> None:
    """The arguments of ``score``, ``full_scores`` (a str, two flags)."""
    sentence(sentence_)
    flag(bos, "bos")
    flag(eos, "eos")


def word(value) -> str:
    """A single word for ``word in model``: a str, else TypeError."""
    return sentence(value, "word")


def lines_or_path(value):
    """A path (str or os.PathLike, not bytes) as it is, or an iterable of sentences wrapped so
    that each item is checked when it is reached; TypeError for anything else."""
    if isinstance(value, (str, os.PathLike)):
        return value
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):
        raise TypeError(
            "lines_or_path must be a file path (str or os.PathLike) or an iterable of str "
            f"sentences, not {type(value).__name__}"
        )
    return _checked_lines(value)


def _checked_lines(lines: Iterable) -> Iterator[str]:
    for i, line in enumerate(lines):
        yield sentence(line, f"sentence {i} of lines_or_path")
