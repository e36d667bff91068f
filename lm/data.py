"""Reading text and turning it into int32 id streams, columns and windows.

The training stream follows the Penn Treebank / rnnlm convention: every line contributes its
words followed by ``</s>``, and the stream starts with one ``</s>``, so that the token before
every sentence, the first included, is ``</s>``. That ``</s>`` is also what scoring feeds as
the sentence-start input (``bos=True``): training and scoring mean the same thing by it.

    text:    "a b\\nc\\n"
    stream:  </s> a b </s> c </s>
    inputs:  </s> a b </s> c        (stream[:-1])
    targets: a b </s> c </s>        (stream[1:]): every word and every </s> is predicted
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import numpy as np

from lm.errors import DataError
from lm.tokenizer import EOS, Vocab

Array = np.ndarray
_LINES_PER_BATCH = 8192


def read_lines(path: str | os.PathLike, errors: str = "strict") -> Iterator[str]:
    """Lines of a UTF-8 text file (stdin for "-") without their line endings (LF or CRLF),
    streamed.

    Raises DataError naming the file (and line) when it is missing, a directory, unreadable,
    closed (stdin) or, with ``errors="strict"``, not valid UTF-8. ``errors="replace"``
    substitutes U+FFFD. The file is opened by this call, so a file that cannot be read fails
    here, before a caller starts a progress bar or prints anything; a line that is not UTF-8
    fails when it is reached.
    """
    path = os.fspath(path)
    if path == "-":
        if sys.stdin is None:  # started with file descriptor 0 closed
            raise DataError("<stdin>: closed (no standard input to read)")
        return decode_lines(sys.stdin.buffer, "<stdin>", errors)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not a text file")
    try:
        f = open(path, "rb")  # noqa: SIM115  closed by _closing when the lines run out
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    return _closing(f, decode_lines(f, path, errors))


def _closing(f, lines: Iterator[str]) -> Iterator[str]:
    with f:
        yield from lines


def decode_lines(f, name: str, errors: str = "strict") -> Iterator[str]:
    """Decode a binary line iterator as UTF-8, naming ``name`` and the line number on errors."""
    for lineno, raw in enumerate(f, start=1):
        try:
            line = raw.decode("utf-8", errors=errors)
        except UnicodeDecodeError as e:
            raise DataError(
                f"{name}:{lineno}: not valid UTF-8 (byte {raw[e.start]:#04x} at column "
                f"{e.start + 1}); fix the file or convert it to UTF-8"
            ) from None
        yield line.rstrip("\r\n")


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
