"""``lm score MODEL_DIR [FILE]``: one result per input line, in input order (see lm.formats for
every shape).

Default (stdout), tab-separated:

    log10prob  tokens  oovs  ppl  ppl_excluding_oovs  sentence

``tokens`` counts ``</s>`` (with eos); ``ppl`` = 10 ** (-log10prob / tokens) over every token
(OOVs scored as ``<unk>``), ``ppl_excluding_oovs`` leaves the OOV tokens out; ``nan`` when no
token was scored. ``--per-token``: KenLM ``query``'s line instead. ``--format srilm``: SRILM
``ngram -ppl -debug 2``'s output, file summary included. ``--json``: one JSON object per line.
Unless ``--quiet`` or ``--format srilm``, SRILM's and KenLM's corpus summaries go to stderr.
"""

from __future__ import annotations

import functools
import json
import os
import sys

import click

import lm
from lm import backend, data, formats, scoring
from lm.cli import cluster as cluster_cli
from lm.cli.cluster import cluster_options
from lm.cli.common import FiniteFloat, echo_lines, handle_errors


def scoring_options(f):
    """The options ``lm score``, ``lm perplexity`` and ``lm rescore`` share: --bos/--no-bos,
    --eos/--no-eos, --batch-size, --errors, --ngram, --ngram-weight."""
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
            click.option(
                "--ngram",
                "ngram_path",
                metavar="PATH",
                help="Mix in this ARPA or KenLM binary n-gram model (needs kenlm: "
                "pip install -e '.[ngram]').",
            ),
            click.option(
                "--ngram-weight",
                type=FiniteFloat(0.0, 1.0),
                metavar="W",
                help="The n-gram's share: p = (1 - W) p_rnn + W p_ngram per token "
                "(find W with lm mix).",
            ),
        ]
    ):
        f = option(f)
    return f


def unk_penalty_option(f):
    return click.option(
        "--unk-penalty",
        type=FiniteFloat(max=0.0),
        metavar="LOG10P",
        help="Score every OOV word at this log10 probability instead of the model's <unk> "
        "(it then counts in every total, SRILM's included).",
    )(f)


def load_scorer(
    model_dir: str, ngram_path: str | None, ngram_weight: float | None, device: str | None = None
):
    """The model in MODEL_DIR on ``device`` (None: ``lm --device`` or $LM_DEVICE), or its
    mixture with the n-gram model (lm.interpolate)."""
    if ngram_weight is not None and ngram_path is None:
        raise click.UsageError("--ngram-weight needs --ngram PATH")
    if ngram_path is not None and ngram_weight is None:
        raise click.UsageError("--ngram needs --ngram-weight W (lm mix finds the best W)")
    model = lm.load(model_dir, device)
    if ngram_path is None:
        return model
    return lm.interpolate(model, ngram_path, ngram_weight)


def scorer_loader(model_dir: str, ngram_path: str | None, ngram_weight: float | None):
    """``load_scorer`` with absolute paths and the device chosen here, as a call a cluster
    worker can repeat."""
    ngram = None if ngram_path is None else os.path.abspath(ngram_path)
    path, device = os.path.abspath(model_dir), backend.resolve()
    return functools.partial(load_scorer, path, ngram, ngram_weight, device)


def result_text(s, vocab, fmt: str, as_json: bool, per_token: bool, oovs_scored: bool) -> str:
    """One scored sentence in the shape the options chose."""
    if fmt == "srilm":
        return formats.srilm_block(s, vocab, oovs_scored) + "\n"
    if as_json:
        return json.dumps(formats.json_obj(s, vocab, per_token), ensure_ascii=False)
    if per_token:
        return formats.kenlm_line(s, vocab)
    return formats.tsv_line(s)


def input_lines(file: str, errors: str):
    """The lines of FILE ('-': stdin) with typed boundary tags stripped (lm.formats)."""
    return (formats.strip_boundary_tags(line) for line in data.read_lines(file, errors))


@click.command("score", short_help="Score sentences: log10 probability per line (and per token).")
@click.argument("model_dir")
@click.argument("files", nargs=-1, metavar="[FILE]...")
@click.option(
    "--per-token", is_flag=True, help="KenLM query's line: word=id context log10prob per token."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "srilm"]),
    default="text",
    show_default=True,
    help="srilm: the output of SRILM's ngram -ppl -debug 2.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input line.")
@scoring_options
@unk_penalty_option
@cluster_options
@click.option("--quiet", "-q", is_flag=True, help="No summary on stderr.")
@handle_errors
def command(
    model_dir,
    files,
    per_token,
    fmt,
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
    """Score each line of FILE (stdin when absent or '-') with the model in MODEL_DIR.

    With --out-dir, each FILE (or each file of a directory, or of a quoted glob) gets its own
    output in DIR. --workers or --scheduler score on a Dask cluster, with the same output.
    """
    if fmt == "srilm" and (per_token or as_json):
        raise click.UsageError("--format srilm prints its own shape: drop --per-token / --json")
    file = files[0] if files else "-"
    # a person typing gets each line's score at once; otherwise a few batches at a time
    chunk = 1 if file == "-" and sys.stdin and sys.stdin.isatty() else 4 * batch_size
    shape = functools.partial(
        result_text,
        fmt=fmt,
        as_json=as_json,
        per_token=per_token,
        oovs_scored=unk_penalty is not None,
    )
    if cluster.wanted(files):
        load = scorer_loader(model_dir, ngram_path, ngram_weight)
        args = (shape, chunk, bos, eos, batch_size, errors, quiet, load, fmt, unk_penalty)
        return cluster_cli.score(model_dir, files, cluster, *args)
    scorer = load_scorer(model_dir, ngram_path, ngram_weight)
    vocab = scorer.vocab
    lines = input_lines(file, errors)
    totals = formats.Totals(oovs_scored=unk_penalty is not None)
    for results in scoring.score_chunks(scorer, lines, bos, eos, batch_size, chunk):
        out = []
        for s in results:
            s = formats.with_unk_penalty(s, unk_penalty)
            totals.add(s)
            out.append(shape(s, vocab))
        echo_lines("\n".join(out))  # whole lines, flushed: they reach a pipe batch by batch
    if fmt == "srilm":
        echo_lines(totals.srilm_summary(file))
    elif not quiet:
        click.echo(totals.summary(file), err=True)
