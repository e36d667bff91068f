"""The ``lm`` command line: one click group; each command lives in its own module."""

from __future__ import annotations

import os

import click

from lm import __version__
from lm.cli.common import keep_freed_memory


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lm")
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    help="BLAS threads for the matrix products [default: one per core]. Use 1 when another "
    "CPU-heavy job shares the cores.",
)
def main(debug: bool, threads: int | None) -> None:
    """Word-level RNN language models: train, score, generate, and the cosine experiment."""
    if debug:
        os.environ["LM_DEBUG"] = "1"
    if threads:
        from lm.core import limit_blas_threads

        limit_blas_threads(threads)
    keep_freed_memory()


from lm.cli import (  # noqa: E402
    corpus,
    cosine,
    demo,
    generate,
    mix,
    perplexity,
    plot,
    rescore,
    score,
    train,
)

for _module in (cosine, plot, train, score, perplexity, mix, rescore, generate, corpus, demo):
    main.add_command(_module.command)
