"""Reading text and turning it into int32 id streams, columns and windows.

The training stream follows the Penn Treebank / rnnlm convention: every line contributes its
words followed by ``</s>``, and the stream starts with one ``</s>``, so that the token before
every sentence, the first included, is ``</s>``. That ``</s>`` is also what scoring feeds as
the sentence-start input (``bos=True``): training and scoring mean the same thing by it.

    text:    "a b\\nc\\n"
    stream:  </s> a b </s> c </s>
    inputs:  </s> a b </s> c        (stream[:-1])
    targets: a b </s> c </s>        (stream[1:]): every word and every </s> is predicted

Text is read by ``lm.files.read_lines`` (UTF-8, gzip or not, a cap on the line length, errors
naming file and line), imported here as ``read_lines`` and ``decode_lines``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

from lm.errors import DataError
from lm.files import decode_lines, read_lines  # the one line reader, re-exported
from lm.tokenizer import EOS, Vocab

Array = np.ndarray
_LINES_PER_BATCH = 8192


def encode_file(path: str | os.PathLike, vocab: Vocab) -> Array:
    """The id stream of a text file: </s> w.. </s> w.. </s>, as int32 (4 bytes a token).

    Raises DataError when the file holds no words at all.
    """
    chunks = [np.array([EOS], dtype=np.int32)]
    batch: list[str] = []
    n_words = 0

    def flush():
        nonlocal n_words
        ids_list, _ = vocab.encode_batch(batch)
        for ids in ids_list:
            chunks.append(ids)
            chunks.append(np.array([EOS], dtype=np.int32))
            n_words += len(ids)
        batch.clear()

    for line in read_lines(path):
        batch.append(line)
        if len(batch) >= _LINES_PER_BATCH:
            flush()
    flush()
    if n_words == 0:
        raise DataError(f"{path}: holds no words (empty or whitespace only)")
    return np.concatenate(chunks)


def batchify(stream: Array, B: int) -> Array:
    """Split a stream into B equal columns, (n // B, B), dropping the last n % B tokens
    (the PyTorch word-language-model layout: column j is a contiguous slice of the text)."""
    n = len(stream) // B
    return stream[: n * B].reshape(B, n).T.copy()


def windows(columns: Array, T: int, start: int = 0) -> Iterator[tuple[int, Array, Array]]:
    """Windows over column data (N, B): (i, x, y) with x = columns[i:i+T], y shifted by one.

    The last window is shorter when N - 1 is not a multiple of T. ``start`` resumes from a
    window index.
    """
    N = columns.shape[0]
    for i, lo in enumerate(range(0, N - 1, T)):
        if i < start:
            continue
        hi = min(lo + T, N - 1)
        yield i, columns[lo:hi], columns[lo + 1 : hi + 1]


def n_windows(columns: Array, T: int) -> int:
    return len(range(0, columns.shape[0] - 1, T))


def sentence_columns(stream: Array, B: int) -> tuple[Array, Array]:
    """Split a stream into B columns that each start at a sentence start (an </s> input),
    padded to equal length, for evaluation without dropping any token.

    Returns (columns (N, B) int32 padded with </s>, mask (N-1, B) bool: True where the
    target at that step is a real token of the stream).
    """
    starts = np.flatnonzero(stream[:-1] == EOS)  # every position where a sentence opens
    n_pred = len(stream) - 1
    B = max(1, min(B, len(starts)))
    # column j starts at the first sentence start at or after j * n_pred / B (or at the last
    # start, when the last sentence is longer than n_pred / B and no start lies beyond)
    at = np.searchsorted(starts, np.arange(B) * n_pred / B)
    cuts = np.unique(starts[np.minimum(at, len(starts) - 1)])
    bounds = np.append(cuts, n_pred)
    lengths = np.diff(bounds)  # predictions per column
    N = int(lengths.max()) + 1
    columns = np.full((N, len(cuts)), EOS, dtype=np.int32)
    mask = np.zeros((N - 1, len(cuts)), dtype=bool)
    for j, (lo, n) in enumerate(zip(cuts, lengths)):
        columns[: n + 1, j] = stream[lo : lo + n + 1]
        mask[:n, j] = True
    return columns, mask


__all__ = [
    "batchify",
    "decode_lines",
    "encode_file",
    "n_windows",
    "read_lines",
    "sentence_columns",
    "windows",
]
