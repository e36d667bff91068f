"""``lm rescore MODEL_DIR NBEST...``: rescore n-best lists (see lm.nbest for the formats).

Output (stdout), in input order:

* ``--format kaldi`` (default): ``KEY<TAB>log10prob`` per hypothesis;
* ``--format srilm``: each hypothesis as ``ascore lscore nwords w1 ...`` with lscore replaced by
  the model's log10 probability (what SRILM's ``ngram -rescore`` writes);
* ``--best`` (either format): one line per list, ``KEY w1 w2 ...`` (a Kaldi transcript; SRILM
  lists are keyed by their file name), the hypothesis with the highest
  ascore + --lm-weight * log10prob + --word-penalty * nwords.
"""

from __future__ import annotations

import itertools

import click

from lm import data, nbest
from lm.cli.common import FiniteFloat, echo_lines, handle_errors
from lm.cli.score import load_scorer, scoring_options, unk_penalty_option


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
):
    """Rescore the n-best lists in NBEST... ('-': stdin) with the model in MODEL_DIR."""
    scorer = load_scorer(model_dir, ngram_path, ngram_weight)
    parse = nbest.parse_srilm if fmt == "srilm" else nbest.parse_kaldi
    hyps = itertools.chain.from_iterable(
        parse(data.read_lines(path, errors), "<stdin>" if path == "-" else path)
        for path in nbest_files
    )
    scored = nbest.rescore(scorer, hyps, bos, eos, batch_size, unk_penalty)
    if best:
        scored = nbest.best_per_key(scored, lm_weight, word_penalty)
    out = []
    for h, s in scored:
        if best:
            out.append(f"{h.key} {h.words}" if h.words else h.key)
        elif fmt == "srilm":
            words = f" {h.words}" if h.words else ""
            out.append(f"{h.ascore:.16g} {s.log10prob:.16g} {h.nwords}{words}")
        else:
            out.append(f"{h.key}\t{s.log10prob:.6f}")
        if len(out) >= 256:
            click.echo("\n".join(out))
            out = []
    if out:
        click.echo("\n".join(out))
