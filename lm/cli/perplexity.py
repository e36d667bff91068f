"""``lm perplexity MODEL_DIR FILE``: the corpus perplexity only.

Text output (stdout): SRILM's summary (``file ...`` and ``0 zeroprobs, logprob= ... ppl= ...
ppl1= ...``, OOVs left out as SRILM leaves them out), then KenLM ``query``'s four summary lines
(``Perplexity including OOVs:`` ..., see lm.formats). ``--json``: one object with every field
of lm.scoring.CorpusPerplexity plus ``log10prob_excluding_oovs`` and ``ppl1_excluding_oovs``
(undefined ratios, e.g. for an empty file, are null).
"""

from __future__ import annotations

import functools
import json
import os

import click
from tqdm import tqdm

from lm import formats, scoring
from lm.cli import cluster as cluster_cli
from lm.cli.cluster import cluster_options
from lm.cli.common import handle_errors
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
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@scoring_options
@unk_penalty_option
@cluster_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
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
    """Perplexity of the model in MODEL_DIR on FILE ('-' for stdin).

    With --out-dir, each FILE (or each file of a directory, or of a quoted glob) gets its own
    report in DIR. --workers or --scheduler score on a Dask cluster, with the same result.
    """
    if cluster.wanted(files):
        load = scorer_loader(model_dir, ngram_path, ngram_weight)
        show = functools.partial(report, as_json=as_json)
        args = (show, bos, eos, batch_size, errors, quiet, load, unk_penalty)
        return cluster_cli.perplexity(model_dir, files, cluster, *args)
    (file,) = files
    scorer = load_scorer(model_dir, ngram_path, ngram_weight)
    totals = corpus_totals(scorer, file, bos, eos, batch_size, errors, unk_penalty, not quiet)
    click.echo(report(file, totals, as_json))


def report(name: str, totals: formats.Totals, as_json: bool) -> str:
    """What ``lm perplexity`` prints for a file: one JSON object, or the two summaries."""
    return json.dumps(totals.to_dict()) if as_json else totals.summary(name)


def corpus_totals(
    scorer, path, bos, eos, batch_size, errors, unk_penalty=None, progress=True
) -> formats.Totals:
    """Score every line of ``path`` (streamed, typed boundary tags stripped) into Totals; a
    tqdm bar of bytes read goes to stderr when ``progress``."""
    lines = input_lines(path, errors)
    size = None if path == "-" or not os.path.isfile(path) else os.path.getsize(path)
    totals = formats.Totals(oovs_scored=unk_penalty is not None)
    bar = tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        desc=os.path.basename(path),
        disable=not progress,
        leave=False,
    )
    with bar:
        for chunk in scoring.score_chunks(scorer, lines, bos, eos, batch_size):
            for s in chunk:
                totals.add(formats.with_unk_penalty(s, unk_penalty))
            if not bar.disable:  # bytes read, approximately (line endings count as one)
                bar.update(sum(len(s.sentence.encode("utf-8")) + 1 for s in chunk))
    return totals
