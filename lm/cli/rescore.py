"""``lm rescore MODEL_DIR NBEST...``: rescore n-best lists (see lm.nbest for the formats).

Output (stdout), in input order:

* ``--format kaldi`` (default): ``KEY<TAB>log10prob`` per hypothesis;
* ``--format srilm``: each hypothesis as ``ascore lscore nwords w1 ...`` with lscore replaced by
  the model's log10 probability (what SRILM's ``ngram -rescore`` writes);
* ``--best`` (either format): one line per list, ``KEY w1 w2 ...`` (a Kaldi transcript; SRILM
  lists are keyed by their file name), the hypothesis with the highest
  ascore + --lm-weight * log10prob + --word-penalty * nwords.

Several NBEST files go to stdout one after another, or with ``--out-dir DIR`` each to
DIR/NAME.rescored; ``--workers N`` / ``--scheduler ADDRESS`` rescore on a Dask cluster with
the same output bit for bit (see lm.cli.cluster).
"""

from __future__ import annotations

import functools

import click

from lm import nbest
from lm.cli import cluster as cluster_cli
from lm.cli.cluster import cluster_options
from lm.cli.common import FiniteFloat, handle_errors
from lm.cli.score import scorer_loader, scoring_options, unk_penalty_option


@click.command("rescore", short_help="Rescore n-best lists (Kaldi 'KEY words' or SRILM).")
@click.argument("model_dir")
@click.argument("nbest_files", metavar="NBEST...", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["kaldi", "srilm"]),
    default="kaldi",
    show_default=True,
    help="kaldi: 'KEY w1 w2 ...' lines; srilm: one list per file of 'ascore lscore nwords w1 ...'.",
)
@click.option("--best", is_flag=True, help="Print only the best hypothesis of each list.")
@click.option(
    "--lm-weight",
    type=FiniteFloat(),
    default=1.0,
    show_default=True,
    help="Scale of the log10 LM score in the ranking.",
)
@click.option(
    "--word-penalty",
    type=FiniteFloat(),
    default=0.0,
    show_default=True,
    help="Added to the ranking score once per word (nwords).",
)
@scoring_options
@unk_penalty_option
@cluster_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar on stderr.")
@handle_errors
def command(
    model_dir,
    nbest_files,
    fmt,
    best,
    lm_weight,
    word_penalty,
    bos,
    eos,
    batch_size,
    errors,
    ngram_path,
    ngram_weight,
    unk_penalty,
    cluster,
    quiet,
):
    """Rescore the n-best lists in NBEST... ('-': stdin) with the model in MODEL_DIR.

    With --out-dir, each NBEST (or each file of a directory, or of a quoted glob) gets its
    own output in DIR. --workers or --scheduler rescore on a Dask cluster, with the same
    output.
    """
    loader = scorer_loader(model_dir, ngram_path, ngram_weight)
    parse = nbest.parse_srilm if fmt == "srilm" else nbest.parse_kaldi
    output = functools.partial(nbest.Output, fmt, best, lm_weight, word_penalty)
    cluster_cli.rescore(model_dir, nbest_files, cluster, output, parse, bos, eos, batch_size,
                        errors, quiet, loader, unk_penalty)  # fmt: skip
