"""What every command shares: errors, options, streams and signals.

- ``handle_errors``: LMError -> one line and exit 1, usage errors exit 2, Ctrl-C or SIGTERM ->
  "lm: interrupted", exit 130; closed standard streams made safe first.
- Option types: ``FiniteFloat`` (a ``click.FloatRange`` that also refuses nan and inf, used by
  every float option of every command), ``SEED`` (an integer >= 0), ``BYTES`` (16M, 1G, ...).
- ``GLOBAL_OPTIONS`` (``--debug``, ``--threads``, ``--max-line-bytes``): accepted before the
  command name and after it (``LMGroup`` adds them to every command).
- ``echo_lines``: data to stdout in whole lines, never half of one (Ctrl-C waits for the line
  being written to end; a second Ctrl-C stops at once); a closed stdout is an error.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import math
import os
import re
import signal
import sys
import threading

import click

from lm import backend, files
from lm.errors import LMError


def handle_errors(fn):
    """Decorator for command bodies: LMError -> 'lm: error: ...' on stderr, exit 1 (no traceback
    unless LM_DEBUG=1 or --debug); BrokenPipeError (reader went away) -> quiet exit 0; any
    other OSError (disk full, a file where a directory should be, ...) -> 'lm: error: ...',
    exit 1, as it is the system refusing, not a bug in lm."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        guard_streams()
        old_term = _catch_sigterm()
        try:
            return fn(*args, **kwargs)
        except LMError as e:
            if os.environ.get("LM_DEBUG"):
                raise
            click.echo(f"lm: error: {e}", err=True)
            sys.exit(1)
        except BrokenPipeError:
            _quiet_broken_pipe()
        except OSError as e:
            if os.environ.get("LM_DEBUG"):
                raise
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"lm: error: {where}{e.strerror or e}", err=True)
            if files.stream_usable(sys.stdout):
                try:
                    sys.stdout.flush()
                except OSError:  # stdout itself failed (disk full): the final flush would too
                    _detach_stdout()
            sys.exit(1)
        except KeyboardInterrupt as e:
            how = " (SIGTERM)" if isinstance(e, Terminated) else ""
            click.echo(f"lm: interrupted{how}", err=True)
            sys.exit(130)
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)

    return wrapper


# ----- signals and standard streams -----


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an exception so that it ends like Ctrl-C (cleanly, exit 130)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def _catch_sigterm():
    """SIGTERM -> Terminated from the moment a command starts (training replaces it with its
    own handler, which saves a checkpoint first). Returns the previous handler to restore,
    or None when signals cannot be set here (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def guard_streams() -> None:
    """Give a closed stdout or stderr (``>&-``, ``2>&-``) a /dev/null file descriptor, so that
    no file lm opens can take descriptor 1 or 2 and receive what was meant for the terminal.
    Python's ``sys.stdout``/``sys.stderr`` stay None: ``echo_lines`` then refuses to print
    data (exit 1: the output would be lost), and messages and progress bars are dropped."""
    for fd in (1, 2):
        if not files.fd_is_open(fd):
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def echo_lines(text: str) -> None:
    """Write ``text`` and a newline to stdout as whole lines, flushed.

    While the bytes are being written (a pipe whose reader is slow can block here), a first
    Ctrl-C or SIGTERM is held until the line being written is complete, then raised (so the
    reader never gets half a line); a second one is raised at once. Raises OSError (EBADF)
    when stdout is closed, since the output would be lost.
    """
    if not files.stream_usable(sys.stdout):
        raise OSError(errno.EBADF, "standard output is closed (the output would be lost)")
    out = sys.stdout
    data = text + "\n"
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        fd = None
    if fd is None or threading.current_thread() is not threading.main_thread():
        out.write(data)
        out.flush()
        return
    out.flush()  # whatever was written through sys.stdout goes first
    _write_whole_lines(fd, data.encode(out.encoding or "utf-8", out.errors or "strict"))


def _write_whole_lines(fd: int, data: bytes) -> None:
    held: list[int] = []

    def hold(signum, frame):
        if held:  # the second signal: stop now
            raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
        held.append(signum)

    old = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        view, pos, end = memoryview(data), 0, len(data)
        while pos < end:
            if held and end == len(data):  # stop at the end of the line being written
                end = pos if pos == 0 or data[pos - 1] == 10 else data.index(b"\n", pos) + 1
                continue
            pos += os.write(fd, view[pos:end])
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if held:
        raise Terminated() if held[0] == signal.SIGTERM else KeyboardInterrupt()


# ----- option types -----


class FiniteFloat(click.FloatRange):
    """``click.FloatRange`` that also refuses nan, inf and overflowing numbers (1e999)."""

    name = "float"

    def convert(self, value, param, ctx):
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


class ByteSize(click.ParamType):
    """A number of bytes: 1048576, 512K, 16M, 1G (powers of 1024), at least 1."""

    name = "bytes"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        else:
            m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*", str(value), re.IGNORECASE)
            if not m:
                self.fail(f"{value!r} is not a size in bytes (e.g. 1048576, 16M, 1G).", param, ctx)
            n = int(m.group(1)) * _BYTE_UNITS[m.group(2).lower()]
        if n < 1:
            self.fail(f"{value!r} is less than 1 byte.", param, ctx)
        return n


_BYTE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
FINITE = FiniteFloat()
SEED = click.IntRange(min=0)


# ----- global options: before or after the command name -----


def _set_debug(ctx, param, value):
    if value:
        os.environ["LM_DEBUG"] = "1"


def _set_threads(ctx, param, value):
    if value:
        from lm.core import limit_blas_threads

        limit_blas_threads(value)


def _set_device(ctx, param, value):
    if value is not None:
        backend.choose(value)


def _set_max_line_bytes(ctx, param, value):
    if value is not None:
        files.set_max_line_bytes(value)


def global_options() -> list[click.Option]:
    """Fresh copies of the options ``lm`` accepts before the command name and after it."""
    return [
        click.Option(
            ["--debug"],
            is_flag=True,
            expose_value=False,
            callback=_set_debug,
            help="Show full tracebacks for errors.",
        ),
        click.Option(
            ["--threads"],
            type=click.IntRange(min=1),
            expose_value=False,
            callback=_set_threads,
            help="BLAS threads for the matrix products [default: one per core]. Use 1 when "
            "another CPU-heavy job shares the cores.",
        ),
        click.Option(
            ["--device"],
            type=click.Choice(backend.DEVICES),
            expose_value=False,
            callback=_set_device,
            help="Where the network computes: cpu (numpy) or cuda (CuPy on an NVIDIA GPU: pip "
            "install 'lm[gpu]') [default: $LM_DEVICE, else cpu].",
        ),
        click.Option(
            ["--max-line-bytes"],
            type=ByteSize(),
            expose_value=False,
            callback=_set_max_line_bytes,
            help=f"Refuse input lines longer than this (16M, 1G, ...) "
            f"[default: {files.DEFAULT_MAX_LINE_BYTES} = 1M].",
        ),
    ]


def with_global_options(command: click.Command) -> click.Command:
    """Add the global options to ``command`` and, for a group, to every command under it."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_global_options(sub)
        return command
    have = {name for p in command.params for name in p.opts}
    command.params.extend(o for o in global_options() if not set(o.opts) & have)
    return command


class LMGroup(click.Group):
    """The ``lm`` group: its commands accept the global options too, and each invocation
    starts from the default line limit (so that one CliRunner call does not leak into the
    next)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        super().add_command(with_global_options(cmd), name)

    def parse_args(self, ctx, args):
        files.set_max_line_bytes(None)
        backend.choose(None)
        return super().parse_args(ctx, args)


def _quiet_broken_pipe() -> None:
    _detach_stdout()
    sys.exit(0)


def _detach_stdout() -> None:
    # Point stdout at devnull so the interpreter's final flush does not raise again.
    if files.stream_usable(sys.stdout):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def keep_freed_memory(pad: int = 64 << 20, trim: int = 256 << 20) -> None:
    """Ask glibc to keep freed heap memory instead of returning it to the OS at once.

    Training and scoring allocate and free the same large temporaries (logits of a window,
    states) again and again; by default glibc hands them back to the OS, and touching them
    again page-faults on every page: about 3x slower cosine training and measurably slower
    language-model steps here. Called once per ``lm`` process; other platforms are left alone.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-2, pad)  # M_TOP_PAD
        libc.mallopt(-1, trim)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass
