"""The ``lm`` command line: one click group; each command lives in its own module."""

from __future__ import annotations

import click

from lm import __version__
from lm.cli.common import LMGroup, global_options, keep_freed_memory


@click.group(
    cls=LMGroup,  # --debug, --threads, --max-line-bytes: before or after the command name
    params=global_options(),
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="lm")
def main() -> None:
    """Word-level RNN language models: train, score, generate, and the cosine experiment."""
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
