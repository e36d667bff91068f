"""Files and standard streams: the one atomic writer and the one UTF-8 line reader.

Writing. ``atomic_write(path)`` opens a temporary file ``.tmp-XXXXXXXX-NAME`` beside ``path``;
when the ``with`` block ends without error the file is flushed, fsynced, given the usual
permissions (0666 less the umask, as ``open`` would create it) and renamed over ``path``, and
the directory is fsynced, so a crash or ``kill -9`` at any moment leaves the old file or the
new one, never half of one. A process killed between the two steps leaves its temporary file
behind; ``remove_temp_files`` deletes such files (only call it when no other process may be
writing into that directory). ``lm`` and ``corpora`` both write through it.

Reading. ``read_lines(path)`` streams the lines of a text file (or of stdin for "-") without
their line endings (LF or CRLF), decoded as UTF-8, with errors that name the file and the line:

- a line longer than ``max_line_bytes`` bytes (line ending not counted; 1 MiB by default,
  ``set_max_line_bytes`` or ``lm --max-line-bytes N`` changes it) is refused when it is reached,
  having read at most that many bytes of it: memory never depends on the input's line lengths;
- a UTF-8 byte-order mark at the start of the file is dropped (it is not part of the first
  word);
- gzip-compressed input (recognised by its first two bytes, 1f 8b, whatever the file's name)
  is decompressed as it is read.

``lm`` (training, validation, scoring, perplexity) and ``corpora`` (``lm corpus prepare``)
both read text through it.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import re
import stat
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from lm.errors import DataError

DEFAULT_MAX_LINE_BYTES = 1 << 20  # 1 MiB
TEMP_NAME = re.compile(r"\.tmp-[a-z0-9_]{8}-.+")  # what atomic_write's mkstemp call creates
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
_max_line_bytes = DEFAULT_MAX_LINE_BYTES


# ----- writing -----


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file next to ``path`` (mode "wb", or "w" for UTF-8 text with "\\n"
    line endings); on success fsync it, give it the umask's permissions and rename it over
    ``path``. On any error (Ctrl-C included) the temporary file is removed and ``path`` is
    untouched; the error propagates (an OSError as the system raised it).

    Good: ``with atomic_write("m/config.json", "w") as f: f.write(text)``.
    Bad: ``open("m/config.json", "w")``: a crash half-way leaves half a file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + os.path.basename(path), dir=directory)
    try:
        text = {"encoding": "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp made it 0600
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, "\\n" line endings) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def remove_temp_files(directory) -> list[str]:
    """Delete the temporary files that ``atomic_write`` leaves in ``directory`` when its
    process is killed before renaming them; return their paths. Only call it when no other
    process may be saving into ``directory`` (one training run owns its model directory)."""
    removed = []
    for entry in os.scandir(directory):
        if TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
                removed.append(entry.path)
            except FileNotFoundError:
                pass
    return removed


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----- reading -----


def max_line_bytes() -> int:
    """The longest line (in bytes, line ending not counted) that ``read_lines`` accepts."""
    return _max_line_bytes


def set_max_line_bytes(n: int | None) -> None:
    """Set the process-wide line-length limit (None: back to ``DEFAULT_MAX_LINE_BYTES``)."""
    global _max_line_bytes
    if n is None:
        n = DEFAULT_MAX_LINE_BYTES
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"max_line_bytes must be an integer >= 1, got {n!r}")
    _max_line_bytes = n


def read_lines(
    path: str | os.PathLike, errors: str = "strict", max_line_bytes: int | None = None
) -> Iterator[str]:
    """Lines of a UTF-8 text file (stdin for "-"; gzip-compressed or not) without their line
    endings (LF or CRLF), streamed (see the module docstring).

    Raises DataError naming the file (and line) when it is missing, a directory, unreadable,
    closed (stdin), a line is longer than ``max_line_bytes`` (default: ``max_line_bytes()``),
    the gzip data is corrupt or, with ``errors="strict"``, a line is not valid UTF-8
    (``errors="replace"`` substitutes U+FFFD). The file is opened by this call, so a file that
    cannot be read fails here, before a caller starts a progress bar or prints anything; a bad
    line fails when it is reached.

    Good: ``for line in read_lines("test.txt.gz"): ...``.
    Bad: ``open("test.txt").read().splitlines()``: the whole file in memory, no limit on a
    line, a BOM left in the first word, and errors that do not name the line.
    """
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    path = os.fspath(path)
    if path == "-":
        if sys.stdin is None:  # started with file descriptor 0 closed
            raise DataError("<stdin>: closed (no standard input to read)")
        return decode_lines(sys.stdin.buffer, "<stdin>", errors, max_line_bytes)
    if os.path.isdir(path):
        raise DataError(f"{path}: is a directory, not a text file")
    try:
        f = open(path, "rb")  # noqa: SIM115  closed by _closing when the lines run out
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    return _closing(f, decode_lines(f, path, errors, max_line_bytes))


def _closing(f, lines: Iterator[str]) -> Iterator[str]:
    with f:
        yield from lines


def decode_lines(
    f, name: str, errors: str = "strict", max_line_bytes: int | None = None
) -> Iterator[str]:
    """Decode a binary stream (a file opened "rb", stdin's buffer, or any object with
    ``readline(limit)``) line by line as UTF-8, naming ``name`` and the line number on errors.
    A gzip stream is decompressed; a BOM at the start is dropped (module docstring)."""
    limit = _max_line_bytes if max_line_bytes is None else max_line_bytes
    readline, size = _maybe_gunzip(f).readline, limit + 2  # room for the line's own "\r\n"
    lineno = 0
    try:
        raw = readline(size).removeprefix(_BOM)  # a BOM only counts at the very start
        while raw:
            lineno += 1
            if len(raw) > limit and (
                len(raw.rstrip(b"\r\n")) > limit or (len(raw) == size and raw[-1] != 10)
            ):
                raise DataError(
                    f"{name}:{lineno}: line longer than {limit} bytes (the limit on a line; "
                    f"raise it with lm --max-line-bytes N)"
                )
            try:
                line = raw.decode("utf-8", errors)
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{name}:{lineno}: not valid UTF-8 (byte {raw[e.start]:#04x} at column "
                    f"{e.start + 1}); fix the file or convert it to UTF-8"
                ) from None
            yield line.rstrip("\r\n")
            raw = readline(size)
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise DataError(
            f"{name}:{lineno + 1}: corrupt gzip data ({e or type(e).__name__})"
        ) from None


def _maybe_gunzip(f):
    """``f`` itself, or a decompressing reader over it when its first bytes are gzip's."""
    if hasattr(f, "peek"):
        head = f.peek(2)[:2]
    elif hasattr(f, "seekable") and f.seekable():
        at = f.tell()
        head = f.read(2)
        f.seek(at)
    else:
        return f
    return gzip.GzipFile(fileobj=f, mode="rb") if head == _GZIP_MAGIC else f


def is_regular_file(path: str | os.PathLike) -> bool:
    """True for a regular file (after symlinks); False for "-", pipes, FIFOs, devices, missing
    paths and directories. A regular file can be read more than once."""
    path = os.fspath(path)
    if path == "-":
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# ----- standard streams -----


def stream_usable(stream) -> bool:
    """True when ``stream`` (sys.stdout, sys.stderr) exists and is open."""
    if stream is None:
        return False
    try:
        return not stream.closed
    except (AttributeError, ValueError):
        return False


def show_progress(progress: bool = True) -> bool:
    """Whether to draw a tqdm bar: asked for, and stderr is an open terminal (tqdm's own
    ``disable=None`` rule, which also stops carriage-return frames from filling a log file),
    never when stderr is closed (tqdm would raise). Pass ``disable=not show_progress(p)``."""
    if not progress or not stream_usable(sys.stderr):
        return False
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def fd_is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as e:
        if e.errno == errno.EBADF:
            return False
        raise
    return True


__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "atomic_write",
    "decode_lines",
    "is_regular_file",
    "max_line_bytes",
    "read_lines",
    "remove_temp_files",
    "set_max_line_bytes",
    "sha256_file",
    "show_progress",
    "write_text",
]
