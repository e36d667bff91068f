"""What every command shares: turning LMError into a one-line message and exit 1."""

from __future__ import annotations

import ctypes
import functools
import os
import sys

import click

from lm.errors import LMError


def handle_errors(fn):
    """Decorator for command bodies: LMError -> 'lm: error: ...' on stderr, exit 1 (no traceback
    unless LM_DEBUG=1 or --debug); BrokenPipeError (reader went away) -> quiet exit 0; any
    other OSError (disk full, a file where a directory should be, ...) -> 'lm: error: ...',
    exit 1, as it is the system refusing, not a bug in lm."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
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
            try:
                sys.stdout.flush()
            except OSError:  # stdout itself failed (disk full): the final flush would too
                _detach_stdout()
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("lm: interrupted", err=True)
            sys.exit(130)

    return wrapper


def _quiet_broken_pipe() -> None:
    _detach_stdout()
    sys.exit(0)


def _detach_stdout() -> None:
    # Point stdout at devnull so the interpreter's final flush does not raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


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
