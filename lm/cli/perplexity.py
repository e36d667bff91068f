"""``lm perplexity MODEL_DIR [FILE]``: the corpus perplexity only.

Like ``lm score`` without the per-line rows: FILE is stdin when absent or '-'. The summary goes
to stderr, where ``lm score`` puts it (unless ``--quiet``): SRILM's (``file ...`` and ``0
zeroprobs, logprob= ... ppl= ... ppl1= ...``, OOVs left out as SRILM leaves them out), then
KenLM ``query``'s four summary lines (``Perplexity including OOVs:`` ..., see lm.formats).
stdout holds data only: with ``--json`` one object with every field of
lm.scoring.CorpusPerplexity plus ``log10prob_excluding_oovs`` and ``ppl1_excluding_oovs``
(undefined ratios, e.g. for an empty file, are null).
"""

from __future__ import annotations

import json

import click

from lm import formats, scoring
from lm.cli.common import echo_lines, handle_errors
from lm.cli.score import input_lines, load_scorer, scoring_options, unk_penalty_option


@click.command(
    "perplexity", short_help="Corpus perplexity on a file: SRILM's and KenLM's summaries."
)
@click.argument("model_dir")
@click.argument("file", default="-", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@scoring_options
@unk_penalty_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary on stderr.")
@handle_errors
def command(
    model_dir,
    file,
    as_json,
    bos,
    eos,
    batch_size,
    errors,
    ngram_path,
    ngram_weight,
    unk_penalty,
    quiet,
):
    """Perplexity of the model in MODEL_DIR on FILE (stdin when absent or '-').

    The summary goes to stderr (as lm score's does); --json puts the numbers on stdout."""
    scorer = load_scorer(model_dir, ngram_path, ngram_weight)
    totals = corpus_totals(scorer, file, bos, eos, batch_size, errors, unk_penalty, not quiet)
    if as_json:
        echo_lines(json.dumps(totals.to_dict()))
    if not quiet:
        click.echo(totals.summary(file), err=True)


def corpus_totals(
    scorer, path, bos, eos, batch_size, errors, unk_penalty=None, progress=True
) -> formats.Totals:
    """Score every line of ``path`` (streamed, typed boundary tags stripped) into Totals; a
    bar of bytes read goes to stderr when ``progress`` and stderr is a terminal."""
    totals = formats.Totals(oovs_scored=unk_penalty is not None)
    with scoring.byte_progress(path, progress) as bar:
        for chunk in scoring.score_chunks(scorer, input_lines(path, errors), bos, eos, batch_size):
            for s in chunk:
                totals.add(formats.with_unk_penalty(s, unk_penalty))
            scoring.advance(bar, chunk)
    return totals
