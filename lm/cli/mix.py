"""``lm mix MODEL_DIR --ngram PATH DEV.txt``: the n-gram weight that minimises DEV's perplexity
(EM on the per-token probabilities, as SRILM's compute-best-mix; see lm.mixing), printed with
the perplexity of each model alone and of the mixture.

Text output (stdout):

    file DEV.txt: 337 sentences, 7337 tokens, 120 OOVs
    rnn ppl= 160.3
    ngram ppl= 145.2
    mixture ppl= 130.1
    ngram weight= 0.3512 (EM, 14 iterations): use --ngram-weight 0.3512

Every token counts (words, OOVs scored as each model's <unk>, and </s>): the project's and
KenLM's "including OOVs" figure. ``--json``: one object (lm.mixing.MixResult's fields and
``file``).
"""

from __future__ import annotations

import json

import click

import lm
from lm import formats, mixing, ngram, scoring
from lm.cli.common import handle_errors
from lm.cli.score import input_lines
from lm.errors import DataError


@click.command("mix", short_help="Find the n-gram weight that minimises held-out perplexity (EM).")
@click.argument("model_dir")
@click.argument("dev")
@click.option(
    "--ngram",
    "ngram_path",
    required=True,
    metavar="PATH",
    help="ARPA or KenLM binary n-gram model (needs kenlm: pip install -e '.[ngram]').",
)
@click.option("--bos/--no-bos", default=True, show_default=True, help="As for lm score.")
@click.option("--eos/--no-eos", default=True, show_default=True, help="As for lm score.")
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=scoring.BATCH_SIZE,
    show_default=True,
    help="Sentences scored side by side.",
)
@click.option(
    "--errors",
    type=click.Choice(["strict", "replace"]),
    default="strict",
    show_default=True,
    help="Non-UTF-8 input: stop with an error, or use U+FFFD.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@handle_errors
def command(model_dir, dev, ngram_path, bos, eos, batch_size, errors, as_json):
    """Tune the weight of the n-gram model mixed into MODEL_DIR's RNN on DEV ('-': stdin)."""
    model = lm.load(model_dir)
    r = mixing.tune_weight(
        model, ngram.load_ngram(ngram_path), input_lines(dev, errors), bos, eos, batch_size
    )
    if r.tokens == 0:
        raise DataError(f"{dev}: no tokens to tune the weight on")
    if as_json:
        obj = {"file": dev, **r.to_dict()}
        click.echo(json.dumps({k: _json(v) for k, v in obj.items()}))
        return
    click.echo(f"file {dev}: {r.sentences} sentences, {r.tokens} tokens, {r.oovs} OOVs")
    click.echo(f"rnn ppl= {r.ppl_rnn:.7g}")
    click.echo(f"ngram ppl= {r.ppl_ngram:.7g}")
    click.echo(f"mixture ppl= {r.ppl_mixture:.7g}")
    click.echo(
        f"ngram weight= {r.weight:.4f} (EM, {r.iterations} iterations): "
        f"use --ngram-weight {r.weight:.4f}"
    )


def _json(v):
    return formats.finite_or_none(v) if isinstance(v, float) else v
