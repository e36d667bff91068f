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

import functools
import json

import click

from lm import formats, scoring
from lm.cli import cluster as cluster_cli
from lm.cli.cluster import cluster_options
from lm.cli.common import echo_lines, handle_errors
from lm.cli.score import (
    input_lines,
    load_scorer,
    scorer_loader,
    scoring_options,
    unk_penalty_option,
)


@click.command(
    "perplexity", short_help="Corpus perplexity on a file: SRILM's and KenLM's summaries."
)
@click.argument("model_dir")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@scoring_options
@unk_penalty_option
@cluster_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no summary on stderr.")
@handle_errors
def command(
    model_dir,
    files,
    as_json,
    bos,
    eos,
    batch_size,
    errors,
    ngram_path,
    ngram_weight,
    unk_penalty,
    quiet,
    cluster,
):
    """Perplexity of the model in MODEL_DIR on FILE (stdin when absent or '-').

    The summary goes to stderr (as lm score's does); --json puts the numbers on stdout. With
    --out-dir, each FILE (or each file of a directory, or of a quoted glob) gets its own report
    in DIR. --workers or --scheduler score on a Dask cluster, with the same result.
    """
    show = functools.partial(report, as_json=as_json, quiet=quiet)
    if cluster.wanted(files):
        load = scorer_loader(model_dir, ngram_path, ngram_weight)
        args = (show, bos, eos, batch_size, errors, quiet, load, unk_penalty)
        return cluster_cli.perplexity(model_dir, files, cluster, *args)
    if len(files) > 1:
        raise click.UsageError(f"{len(files)} inputs: give --out-dir DIR for one report per input")
    file = files[0] if files else "-"
    scorer = load_scorer(model_dir, ngram_path, ngram_weight)
    totals = corpus_totals(scorer, file, bos, eos, batch_size, errors, unk_penalty, not quiet)
    text = show(file, totals)
    if text is not None:
        echo_lines(text)


def report(
    name: str, totals: formats.Totals, as_json: bool, quiet: bool = False, to_file: bool = False
) -> str | None:
    """What ``lm perplexity`` reports for an input. To a report file (``to_file``): the JSON
    object or the two summaries, returned. Otherwise the summaries go to stderr unless
    ``quiet``, and the JSON object (or None) is returned for stdout."""
    if to_file:
        return json.dumps(totals.to_dict()) if as_json else totals.summary(name)
    if not quiet:
        click.echo(totals.summary(name), err=True)
    return json.dumps(totals.to_dict()) if as_json else None


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
