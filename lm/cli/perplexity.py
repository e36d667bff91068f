"""``lm perplexity MODEL_DIR FILE``: the corpus perplexity only (see lm.scoring.CorpusPerplexity).

Text output (stdout): SRILM's two summary lines, then KenLM's perplexity excluding OOVs and
the cross-entropy. ``--json``: one object with every field of CorpusPerplexity (undefined
ratios, e.g. for an empty file, are null).
"""

from __future__ import annotations

import functools
import json

import click

import lm
from lm import scoring
from lm.cli import cluster as cluster_cli
from lm.cli.cluster import cluster_options
from lm.cli.common import handle_errors
from lm.cli.score import finite_or_none, scoring_options, srilm_number, summary


@click.command("perplexity", short_help="Corpus perplexity of a model on a file (SRILM's counts).")
@click.argument("model_dir")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@scoring_options
@cluster_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@handle_errors
def command(model_dir, files, as_json, bos, eos, batch_size, errors, quiet, cluster):
    """Perplexity of the model in MODEL_DIR on FILE ('-' for stdin).

    With --out-dir, each FILE (or each file of a directory, or of a quoted glob) gets its own
    report in DIR. --workers or --scheduler score on a Dask cluster, with the same result.
    """
    if cluster.wanted(files):
        args = (functools.partial(report, as_json=as_json), bos, eos, batch_size, errors, quiet)
        return cluster_cli.perplexity(model_dir, files, cluster, *args)
    (file,) = files
    model = lm.load(model_dir)
    r = scoring.corpus_perplexity(
        model, file, bos=bos, eos=eos, batch_size=batch_size, progress=not quiet, errors=errors
    )
    click.echo(report(file, r, as_json))


def report(name: str, r: scoring.CorpusPerplexity, as_json: bool) -> str:
    """What ``lm perplexity`` prints for a file: one JSON object, or three lines of text."""
    if as_json:
        return json.dumps(
            {k: finite_or_none(v) if isinstance(v, float) else v for k, v in r.to_dict().items()}
        )
    return (
        f"{summary(name, r)}\n"
        f"ppl excluding OOVs= {srilm_number(r.ppl_excluding_oovs)}, "
        f"cross-entropy= {srilm_number(r.bits_per_token)} bits per token"
    )
