"""``lm corpus``: make corpora on this machine with no download (synthetic, pydoc, any text),
and the Kneser-Ney bigram baseline as an ARPA file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from corpora import synth, text
from lm.cli.common import SEED, echo_lines, handle_errors

_OUTDIR = click.argument("outdir", type=click.Path(path_type=Path))
_FORCE = click.option(
    "--force", is_flag=True, help="Write into a non-empty OUTDIR, replacing the corpus files there."
)
_QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bars or summary.")
_JSON = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the corpus's oracle.json / meta.json to stdout as one line.",
)


@click.group(
    "corpus", short_help="Make a corpus: synthetic (with oracle), pydoc, or prepared text."
)
def command() -> None:
    """Make a corpus directory: train.txt, valid.txt, test.txt (one sentence a line, words
    separated by single spaces) and a JSON file describing it."""


@command.command("synth")
@_OUTDIR
@click.option(
    "--tokens",
    type=click.IntRange(min=1),
    default=synth.DEFAULT_TOKENS,
    show_default=True,
    help="Words in all three splits together (90% train, 5% valid, 5% test).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Random seed.")
@_FORCE
@_QUIET
@_JSON
@handle_errors
def synth_command(
    outdir: Path, tokens: int, seed: int, force: bool, quiet: bool, as_json: bool
) -> None:
    """Sample an English-like corpus from a known hidden Markov source into OUTDIR.

    oracle.json gives each split's exact perplexity under the source (the best any model can
    expect), counting </s> once per sentence as `lm perplexity` does.
    """
    info = synth.build(outdir, tokens=tokens, seed=seed, force=force, progress=not quiet)
    if as_json:
        echo_lines(json.dumps(info))
    if not quiet:
        source = info["source"]
        click.echo(
            f"wrote {outdir}: vocabulary {source['vocab_size']} words, seed {seed}", err=True
        )
        click.echo(f"{'split':<6} {'sentences':>9} {'words':>8} {'oracle ppl':>10}", err=True)
        for name, s in info["splits"].items():
            click.echo(f"{name:<6} {s['sentences']:>9} {s['words']:>8} {s['ppl']:>10.3f}", err=True)


@command.command("pydoc")
@_OUTDIR
@click.option(
    "--stdlib",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Standard library directory to read  [default: this Python's]",
)
@_FORCE
@_QUIET
@_JSON
@handle_errors
def pydoc_command(
    outdir: Path, stdlib: Path | None, force: bool, quiet: bool, as_json: bool
) -> None:
    """English text from this Python's standard library docstrings, into OUTDIR.

    The library's .py files are read as source (nothing is imported), together with the help
    topics of pydoc_data; one normalised sentence per line, de-duplicated, split 90/5/5 by a
    hash of each line.
    """
    meta = text.build_pydoc(outdir, force=force, progress=not quiet, stdlib=stdlib)
    _report(outdir, meta, quiet, as_json)


@command.command("prepare")
@click.argument("raw", type=click.Path(path_type=Path))
@_OUTDIR
@_FORCE
@_QUIET
@_JSON
@handle_errors
def prepare_command(raw: Path, outdir: Path, force: bool, quiet: bool, as_json: bool) -> None:
    """Normalise the UTF-8 text file RAW line by line into a corpus in OUTDIR.

    Lowercase, numbers become N, punctuation is dropped, empty and repeated lines are dropped;
    split 90/5/5 by a hash of each line. RAW may be gzip-compressed; a byte-order mark at its
    start is dropped; lines longer than --max-line-bytes are refused.
    """
    meta = text.prepare(raw, outdir, force=force, progress=not quiet)
    _report(outdir, meta, quiet, as_json)


@command.command("bigram")
@click.argument("train", type=click.Path(path_type=Path))
@click.argument("arpa", type=click.Path(dir_okay=False, path_type=Path))
@_QUIET
@handle_errors
def bigram_command(train: Path, arpa: Path, quiet: bool) -> None:
    """Fit the Kneser-Ney bigram baseline on TRAIN and write it to ARPA (an ARPA file that
    KenLM, and so lm score --ngram, reads)."""
    from corpora.ngram import KneserNeyBigram
    from lm.data import read_lines

    model = KneserNeyBigram().fit(read_lines(train))
    model.write_arpa(arpa)
    if not quiet:
        click.echo(
            f"wrote {arpa}: {len(model.vocab_)} words, {len(model.bigrams_)} bigrams", err=True
        )


def _report(outdir: Path, meta: dict, quiet: bool, as_json: bool) -> None:
    if as_json:
        echo_lines(json.dumps(meta))
    if not quiet:
        click.echo(
            f"wrote {outdir}: {meta['duplicates_dropped']} duplicate lines dropped, "
            f"{meta['train_vocab']} word types in train",
            err=True,
        )
        click.echo(f"{'split':<6} {'lines':>8} {'words':>9}", err=True)
        for name, s in meta["splits"].items():
            click.echo(f"{name:<6} {s['lines']:>8} {s['words']:>9}", err=True)
