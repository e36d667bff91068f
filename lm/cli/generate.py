"""``lm generate``: continue a prompt with a trained model."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings

import click

from lm.api import load
from lm.cli.common import SEED, FiniteFloat, echo_lines, handle_errors
from lm.generation import GenerationOptions, PromptWarning, generate_with

POSITIVE = click.IntRange(min=1)


@click.command(
    "generate", short_help="Generate text: greedy, sampling (temperature/top-k/top-p), beam."
)
@click.argument("model_dir", metavar="MODEL_DIR")
@click.option(
    "--prompt", default="", help="Text to continue (fed after <s>; unknown words become <unk>)."
)
@click.option(
    "--max-tokens",
    type=POSITIVE,
    default=GenerationOptions.max_tokens,
    show_default=True,
    help="At most this many steps, each giving a word or the final </s>.",
)
@click.option(
    "--num",
    type=POSITIVE,
    help="Number of samples, generated as one batch [default: 1; with --beam: W].",
)
@click.option(
    "--seed",
    type=SEED,
    help="Make sampling repeatable (without it every run differs).",
)
@click.option("--greedy", is_flag=True, help="Take the most probable word at every step.")
@click.option(
    "--temperature",
    type=FiniteFloat(min=0, min_open=True),
    help="Divide the logits by T before sampling [default: 1].",
)
@click.option("--top-k", type=POSITIVE, help="Sample among the K most probable words only.")
@click.option(
    "--top-p",
    type=FiniteFloat(min=0, max=1, min_open=True),
    help="Sample from the smallest set of words whose probability reaches P.",
)
@click.option(
    "--beam",
    type=POSITIVE,
    metavar="W",
    help="Beam search: the W most probable continuations, best first.",
)
@click.option(
    "--length-norm", is_flag=True, help="With --beam, rank by log-probability per predicted token."
)
@click.option(
    "--min-tokens",
    type=click.IntRange(min=0),
    help="With --beam, the fewest words a result may hold [default: 1, so never the empty "
    "sentence; 0 allows it].",
)
@click.option("--no-unk", is_flag=True, help="Never emit <unk>.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per sample: text, tokens, log10prob, stopped, prompt_tokens.",
)
@handle_errors
def command(model_dir, prompt, as_json, **options):
    """Generate text from the model in MODEL_DIR, one text per line on stdout.

    Sampling (the default) applies --temperature, then --top-k, then --top-p. <s> is never
    emitted. --beam ranks by total probability, which favours short texts: --min-tokens
    (default 1) keeps out those shorter than it, --length-norm ranks per token instead. log10prob (with --json) is the model's own probability of the generated words,
    and of the final </s> when generation stopped there ("stopped": "eos").
    """
    try:
        opts = GenerationOptions(**options)
    except ValueError as e:
        raise click.UsageError(_option_names(str(e))) from None
    model = load(model_dir)
    try:  # now that the vocabulary and state sizes are known
        opts.check_memory(model.net.config.n_vocab, model.net.config.hidden)
    except ValueError as e:
        raise click.UsageError(_option_names(str(e))) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PromptWarning)
        samples = generate_with(model.net, model.vocab, prompt, opts)
    for w in caught:
        click.echo(f"lm: warning: {w.message}", err=True)
    lines = [json.dumps(s.to_dict(), ensure_ascii=False) if as_json else s.text for s in samples]
    echo_lines("\n".join(lines))


def _option_names(message: str) -> str:
    """Spell the library's option names as this command's flags: top_k -> --top-k."""
    names = "|".join(f.name for f in dataclasses.fields(GenerationOptions))
    return re.sub(rf"\b({names})\b", lambda m: "--" + m.group(1).replace("_", "-"), message)
