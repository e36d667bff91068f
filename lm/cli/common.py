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
    unless LM_DEBUG=1 or --debug); BrokenPipeError (reader went away) -> quiet exit 0."""

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
        except KeyboardInterrupt:
            click.echo("lm: interrupted", err=True)
            sys.exit(130)

    return wrapper


def _quiet_broken_pipe() -> None:
    # Point stdout at devnull so the interpreter's final flush does not raise again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


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
