"""``lm demo``: the main job of the README's first command."""

from __future__ import annotations

import json

import click

from corpora.synth import DEFAULT_TOKENS
from lm import files
from lm.cli.common import SEED, FiniteFloat, echo_lines, handle_errors


@click.command("demo", short_help="Run the whole toolkit on a synthetic corpus with a known floor.")
@click.option(
    "--out",
    default="demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for the corpus, the model and the plots.",
)
@click.option(
    "--minutes",
    type=FiniteFloat(min=0, min_open=True),
    default=2.2,
    show_default=True,
    help="Training time budget (the rest takes about a minute).",
)
@click.option(
    "--tokens",
    type=click.IntRange(min=1),
    default=DEFAULT_TOKENS,
    show_default=True,
    help="Words in the synthetic corpus (all three splits).",
)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Last stdout line: a JSON summary.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def command(out, minutes, tokens, seed, as_json, quiet):
    """Synthetic corpus -> train -> perplexity vs oracle -> score, generate -> cosine."""
    from lm import demo

    progress = files.show_progress(not quiet)
    config = demo.DemoConfig(out=out, minutes=minutes, tokens=tokens, seed=seed, progress=progress)
    summary = demo.run(config, say=echo_lines)
    if as_json:
        echo_lines(json.dumps(summary))
