"""``lm score MODEL_DIR [FILE]``: one line of scores per input line, in input order.

Output (stdout), tab-separated:

    log10prob  tokens  oovs  ppl  [word=id log10prob ...]  sentence

``tokens`` counts ``</s>`` (with eos); ``ppl`` = 10 ** (-log10prob / tokens), ``nan`` when no
token was scored (an empty line with ``--no-eos``). ``--per-token`` inserts one field per
token, like KenLM's ``query`` (OOV words show id 0, the id of <unk> they are scored as).
``--json`` prints one JSON object per line instead (ppl ``null`` when undefined).
An SRILM-style summary goes to stderr at the end unless ``--quiet``.
"""

from __future__ import annotations

import functools
import json
import math
import sys

import click

import lm
from lm import data, scoring
from lm.cli import cluster as cluster_cli
from lm.cli.cluster import cluster_options
from lm.cli.common import handle_errors


def scoring_options(f):
    """The options ``lm score`` and ``lm perplexity`` share: --bos/--no-bos, --eos/--no-eos,
    --batch-size, --errors."""
    for option in reversed(
        [
            click.option(
                "--bos/--no-bos",
                default=True,
                show_default=True,
                help="Start each sentence from the sentence-start state (else the zero state).",
            ),
            click.option(
                "--eos/--no-eos",
                default=True,
                show_default=True,
                help="Include the end-of-sentence </s> term.",
            ),
            click.option(
                "--batch-size",
                type=click.IntRange(min=1),
                default=scoring.BATCH_SIZE,
                show_default=True,
                help="Sentences scored side by side.",
            ),
            click.option(
                "--errors",
                type=click.Choice(["strict", "replace"]),
                default="strict",
                show_default=True,
                help="Non-UTF-8 input: stop with an error, or use U+FFFD.",
            ),
        ]
    ):
        f = option(f)
    return f


@click.command("score", short_help="Score sentences: log10 probability per line (and per token).")
@click.argument("model_dir")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option("--per-token", is_flag=True, help="Add each token's log10 probability.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input line.")
@scoring_options
@cluster_options
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
@handle_errors
def command(model_dir, files, per_token, as_json, bos, eos, batch_size, errors, quiet, cluster):
    """Score each line of FILE (stdin when absent or '-') with the model in MODEL_DIR.

    With --out-dir, each FILE (or each file of a directory, or of a quoted glob) gets its own
    output in DIR. --workers or --scheduler score on a Dask cluster, with the same output.
    """
    file = files[0] if files else "-"
    # a person typing gets each line's score at once; otherwise a few batches at a time
    chunk = 1 if file == "-" and sys.stdin and sys.stdin.isatty() else 4 * batch_size
    if cluster.wanted(files):
        fmt = functools.partial(format_json if as_json else format_line, per_token=per_token)
        args = (fmt, chunk, bos, eos, batch_size, errors, quiet)
        return cluster_cli.score(model_dir, files, cluster, *args)
    model = lm.load(model_dir)
    lines = data.read_lines(file, errors)
    totals = scoring.CorpusTotals()
    for results in scoring.score_chunks(model, lines, bos, eos, batch_size, chunk):
        out = []
        for s in results:
            totals.add(s)
            out.append(
                format_json(s, model.vocab, per_token)
                if as_json
                else format_line(s, model.vocab, per_token)
            )
        click.echo("\n".join(out))  # flushed: the lines reach a pipe in order, batch by batch
    if not quiet:
        click.echo(summary(file, totals.result()), err=True)


def format_line(s: scoring.SentenceScore, vocab, per_token: bool) -> str:
    fields = [f"{s.log10prob:.6f}", str(s.tokens), str(s.oovs), f"{s.ppl:.6g}"]
    if per_token:
        fields += [
            f"{w}={i} {lp:.6f}"
            for w, i, lp in zip(s.token_texts(vocab), s.ids.tolist(), s.log10probs.tolist())
        ]
    fields.append(s.sentence)
    return "\t".join(fields)


def format_json(s: scoring.SentenceScore, vocab, per_token: bool) -> str:
    obj = {
        "sentence": s.sentence,
        "log10prob": s.log10prob,
        "tokens": s.tokens,
        "words": s.words,
        "oovs": s.oovs,
        "ppl": finite_or_none(s.ppl),
    }
    if per_token:
        obj["per_token"] = [
            {"token": w, "id": i, "log10prob": lp, "oov": oov}
            for w, i, lp, oov in zip(
                s.token_texts(vocab), s.ids.tolist(), s.log10probs.tolist(), s.oov.tolist()
            )
        ]
    return json.dumps(obj, ensure_ascii=False)


def summary(name: str, r: scoring.CorpusPerplexity) -> str:
    """SRILM's two summary lines (ratios that are undefined print as 'undefined', as SRILM
    prints them)."""
    return (
        f"file {name}: {r.sentences} sentences, {r.words} words, {r.oovs} OOVs\n"
        f"0 zeroprobs, logprob= {r.log10prob:.6g} ppl= {srilm_number(r.ppl)} "
        f"ppl1= {srilm_number(r.ppl1)}"
    )


def srilm_number(x: float) -> str:
    return "undefined" if math.isnan(x) else f"{x:.6g}"


def finite_or_none(x: float) -> float | None:
    """JSON has no nan or inf: undefined or overflowing numbers become null."""
    return x if math.isfinite(x) else None
