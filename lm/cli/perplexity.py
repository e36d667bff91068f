"""``lm perplexity MODEL_DIR [FILE]``: the corpus perplexity only (lm.scoring.CorpusPerplexity).

Like ``lm score`` without the per-line rows: FILE is stdin when absent or '-'; the summary
(SRILM's two lines, then KenLM's perplexity excluding OOVs and the cross-entropy) goes to
stderr, where ``lm score`` puts it, unless ``--quiet``; stdout holds data only: with ``--json``
one object with every field of CorpusPerplexity (undefined ratios, e.g. for an empty file,
are null).
"""

from __future__ import annotations

import json

import click

import lm
from lm import scoring
from lm.cli.common import echo_lines, handle_errors
from lm.cli.score import finite_or_none, scoring_options, srilm_number, summary


@click.command("perplexity", short_help="Corpus perplexity of a model on a file (SRILM's counts).")
@click.argument("model_dir")
@click.argument("file", default="-", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@scoring_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary on stderr.")
@handle_errors
def command(model_dir, file, as_json, bos, eos, batch_size, errors, quiet):
    """Perplexity of the model in MODEL_DIR on FILE (stdin when absent or '-').

    The summary goes to stderr (as lm score's does); --json puts the numbers on stdout."""
    model = lm.load(model_dir)
    r = scoring.corpus_perplexity(
        model, file, bos=bos, eos=eos, batch_size=batch_size, progress=not quiet, errors=errors
    )
    if as_json:
        obj = {k: finite_or_none(v) if isinstance(v, float) else v for k, v in r.to_dict().items()}
        echo_lines(json.dumps(obj))
    if not quiet:
        click.echo(summary(file, r), err=True)
        click.echo(
            f"ppl excluding OOVs= {srilm_number(r.ppl_excluding_oovs)}, "
            f"cross-entropy= {srilm_number(r.bits_per_token)} bits per token",
            err=True,
        )
