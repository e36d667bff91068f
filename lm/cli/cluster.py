"""``--workers N | --scheduler ADDRESS`` and ``--out-dir DIR`` for ``lm score``, ``lm
perplexity`` and ``lm rescore`` (and any command that scores lines): the options, and the run
they ask for.

A command takes them with one decorator, ``@cluster_options``, which hands it one
``cluster`` argument (a ClusterOptions), and branches with one call:

    if cluster.wanted(files):
        return cluster_cli.score(model_dir, files, cluster, fmt, chunk, bos, eos, ...)

Without a cluster option and with one input the command runs as before, in this process.
``--out-dir`` alone scores in this process too, one output per input.

Inputs. Without --out-dir: one FILE (or '-'), output to stdout exactly as one process writes
it. With --out-dir DIR: each FILE may be a file, a directory (every non-hidden file in it,
sorted by name) or a quoted glob ('shards/*.txt', sorted); input NAME is written to
DIR/NAME.scores (lm score) or DIR/NAME.ppl (lm perplexity), atomically when the input is
done, so an output that exists is complete, whatever stopped an earlier run. A rerun skips
inputs whose output exists (with whatever options wrote it: use a new DIR after changing
options). The chunks of consecutive inputs share the cluster without a pause between files.

Ctrl-C: a Ctrl-C during a write to stdout takes effect when the write is done (a second one
does not wait), so stdout holds whole lines; exit 130, the cluster this command started is
shut down.

Plugging in another command: add ``@cluster_options`` and one branch that calls ``run`` with
a ``Recipe``: the command's own reader, chunk size (the one its single-process path passes
to ``scoring.score_chunks``: the bits match only for the same chunks), line format, totals
and closing text. ``score``, ``perplexity`` and ``rescore`` below are three such recipes;
``rescore``'s lines hold more than the sentence (an n-best entry: key, hypothesis, acoustic
score), so it cuts its own chunks (``Recipe.cut``: the words are sent, the hypotheses stay
here in ``Chunk.extra``) and writes its own text from each result (``Recipe.emit``). A model
made of several files (an RNN mixed with an n-gram) is loaded on the workers by ``run``'s
``loader``: a ``functools.partial`` of a module-level function with absolute paths.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass

import click
from tqdm import tqdm

import lm
from lm import checkpoint, data, formats, nbest, scoring
from lm import cluster as lm_cluster
from lm.errors import DataError

_TEMP_NAME = re.compile(r"\.tmp-[a-z0-9_]{8}-(.+)")  # what checkpoint.atomic_write leaves
_END = object()  # marks the end of an input in the stream of chunks


@dataclass(frozen=True)
class ClusterOptions:
    """--workers, --scheduler and --out-dir as given (None when absent)."""

    workers: int | None = None
    scheduler: str | None = None
    out_dir: str | None = None

    def wanted(self, files: tuple[str, ...]) -> bool:
        """True when the run goes through here: a cluster, --out-dir, or several inputs."""
        return bool(self.workers or self.scheduler or self.out_dir) or len(files) > 1


def cluster_options(f):
    """Add --workers, --scheduler and --out-dir to a click command; it receives them as one
    keyword argument ``cluster`` (a ClusterOptions)."""

    @functools.wraps(f)
    def wrapper(*args, workers, scheduler, out_dir, **kwargs):
        if workers and scheduler:
            raise click.UsageError("--workers and --scheduler exclude each other: give one")
        return f(*args, cluster=ClusterOptions(workers, scheduler, out_dir), **kwargs)

    for option in (
        click.option(
            "--out-dir",
            type=click.Path(file_okay=False),
            metavar="DIR",
            help="One output per input (a FILE may then be a directory or a quoted glob) "
            "in DIR; a rerun skips inputs already done.",
        ),
        click.option(
            "--scheduler",
            metavar="ADDRESS",
            help="Score on the Dask cluster whose scheduler is at ADDRESS "
            "(tcp://HOST:8786); needs the 'cluster' extra.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            help="Score on N single-threaded worker processes started here (a Dask "
            "LocalCluster); needs the 'cluster' extra.",
        ),
    ):
        wrapper = option(wrapper)
    return wrapper


@dataclass(frozen=True)
class Recipe:
    """What a command scores and writes through ``run``.

    suffix : appended to an input's name to name its output in --out-dir.
    chunk_lines : lines scored together: the single-process path's (the bits depend on it).
    read : (path, errors) -> lines, the command's own reader of an input.
    format : (SentenceScore, vocab) -> the output line of a sentence, or None (no lines); it
        runs on the workers, so it must be picklable (a module-level function or a partial).
    transform : SentenceScore -> SentenceScore applied first on the workers, or None.
    totals : () -> a fresh object, one per input, that ``emit`` adds each result to.
    finish : (name, totals) -> text to end the input's output with, or None; it may print
        (a summary on stderr).
    cut : (lines, name) -> the input's chunks (lm.cluster.Chunk); None: ``chunk_lines``
        lines each.
    emit : (ChunkResult, totals) -> the text to write for a result, or None; None: its
        formatted lines, each sentence added to ``totals`` (``add(SentenceScore)``).
    chained : several inputs may go to stdout one after another (else --out-dir is needed).
    """

    suffix: str
    chunk_lines: int
    read: Callable[[str, str], Iterable[str]]
    format: Callable | None
    transform: Callable | None
    totals: Callable[[], object]
    finish: Callable[[str, object], str | None]
    cut: Callable[[Iterable[str], str], Iterable] | None = None
    emit: Callable[[object, object], str | None] | None = None
    chained: bool = False


def _add_sentences(r, totals) -> str | None:
    """Recipe.emit's default: every sentence of ``r`` added to ``totals``; its text."""
    for sentence in r.scores:
        totals.add(sentence)
    return r.text


def score(model_dir, files, opts: ClusterOptions, shape, chunk_lines, bos, eos, batch_size,
          errors, quiet, loader, fmt, unk_penalty) -> None:  # fmt: skip
    """``lm score`` through lm.cluster: lines written by ``shape(SentenceScore, vocab)`` on
    the workers (after ``--unk-penalty``), ``chunk_lines`` lines a chunk; then SRILM's file
    summary on stdout (``--format srilm``) or both summaries on stderr unless ``quiet``."""
    from lm.cli.score import input_lines

    def finish(name, totals):
        if fmt == "srilm":
            return totals.srilm_summary(name)
        if not quiet:
            tqdm.write(totals.summary(name), file=sys.stderr)
        return None

    totals = functools.partial(formats.Totals, oovs_scored=unk_penalty is not None)
    penalty = formats.penalty_transform(unk_penalty)
    recipe = Recipe(".scores", chunk_lines, input_lines, shape, penalty, totals, finish)
    run(model_dir, files, opts, recipe, bos, eos, batch_size, errors, quiet, loader)


def perplexity(model_dir, files, opts: ClusterOptions, report, bos, eos, batch_size, errors,
               quiet, loader, unk_penalty) -> None:  # fmt: skip
    """``lm perplexity`` through lm.cluster: ``report(name, formats.Totals)`` of each input to
    stdout or to its output file."""
    from lm.cli.score import input_lines

    totals = functools.partial(formats.Totals, oovs_scored=unk_penalty is not None)
    recipe = Recipe(
        ".ppl",
        scoring.CHUNK_LINES,
        input_lines,
        None,
        formats.penalty_transform(unk_penalty),
        totals,
        lambda name, t: report(name, t, to_file=opts.out_dir is not None),
    )
    run(model_dir, files, opts, recipe, bos, eos, batch_size, errors, quiet, loader)


def rescore(model_dir, files, opts: ClusterOptions, output: Callable[[], nbest.Output], parse,
            bos, eos, batch_size, errors, quiet, loader, unk_penalty) -> None:  # fmt: skip
    """``lm rescore``, in this process or on the cluster: each input's hypotheses (``parse``:
    lines, name -> Hypothesis) in batches of whole keys (``nbest.chunks``), written by a
    fresh ``output()`` per input (an ``nbest.Output``); inputs chained on stdout unless
    --out-dir (DIR/NAME.rescored)."""
    recipe = Recipe(
        ".rescored",
        nbest.MAX_BATCH,
        data.read_lines,
        None,
        formats.penalty_transform(unk_penalty),
        output,
        lambda name, out: out.finish(),
        cut=lambda lines, name: nbest.chunks(parse(lines, name)),
        emit=lambda r, out: out.take(zip(r.chunk.extra, r.scores)),
        chained=True,
    )
    run(model_dir, files, opts, recipe, bos, eos, batch_size, errors, quiet, loader)


def run(model_dir, files, opts: ClusterOptions, recipe: Recipe, bos, eos, batch_size, errors,
        quiet, loader=None) -> None:  # fmt: skip
    """Score ``files`` as ``recipe`` says, on the cluster ``opts`` names (or in this process),
    to stdout or to one output per input in ``opts.out_dir``. The model is loaded here first
    (its errors are one process's); workers load it with ``loader`` (default: lm.load of
    MODEL_DIR's absolute path; see lm.cluster.model_loader)."""
    shards = _shards(files, opts.out_dir, recipe.suffix, recipe.chained)
    model = lm.load(model_dir) if loader is None else loader()
    loader = loader or functools.partial(lm.load, os.path.abspath(model_dir))
    todo = [(path, out) for path, out in shards if out is None or not os.path.exists(out)]
    for path, _ in todo:  # a missing input fails now, not after the inputs before it
        if path != "-" and not os.path.isfile(path):
            recipe.read(path, errors)
    if len(todo) < len(shards) and not quiet:
        click.echo(
            f"lm: {len(shards) - len(todo)} of {len(shards)} inputs already done in "
            f"{opts.out_dir}: skipped",
            err=True,
        )
    if opts.out_dir:
        _remove_unfinished(opts.out_dir, {os.path.basename(out) for _, out in todo})
    use_cluster = bool(opts.workers or opts.scheduler)
    connection = (
        lm_cluster.connect(opts.scheduler, opts.workers, quiet=not os.environ.get("LM_DEBUG"))
        if use_cluster
        else nullcontext(None)
    )
    # lines scored to a terminal show the progress themselves
    writes_lines = recipe.format is not None or recipe.emit is not None
    to_terminal = writes_lines and opts.out_dir is None and sys.stdout.isatty()
    with (
        connection as client,
        _whole_lines() as echo,
        tqdm(unit=" sentences", leave=False, disable=quiet or to_terminal or None) as bar,
    ):
        chunks = _chunks(todo, recipe, errors)
        emit = recipe.emit or _add_sentences
        stream = lm_cluster.in_order(
            client, loader if client else model, chunks, bos, eos, batch_size,
            recipe.format, recipe.transform,
        )  # fmt: skip
        with closing(stream) as rs:
            for path, out in todo:
                with _sink(out, echo) as write:
                    totals = recipe.totals()
                    for r in rs:
                        if r is _END:
                            break
                        text = emit(r, totals)
                        if text is not None:
                            write(text)
                        bar.update(len(r.scores))
                    tail = recipe.finish(path, totals)
                    if tail is not None:
                        if out is None:
                            bar.clear()  # the report goes to the terminal the bar is on
                        write(tail)


def _chunks(todo, recipe: Recipe, errors):
    for path, _ in todo:
        name = "<stdin>" if path == "-" else path
        lines = recipe.read(path, errors)
        if recipe.cut is None:
            yield from lm_cluster.read_chunks(lines, recipe.chunk_lines, name)
        else:
            yield from recipe.cut(lines, name)
        yield _END


def _shards(files, out_dir, suffix, chained=False) -> list[tuple[str, str | None]]:
    """(input, output) pairs; output None means stdout (for several inputs only when
    ``chained``)."""
    if out_dir is None:
        if chained:
            return [(f, None) for f in files or ("-",)]
        if len(files) > 1:
            raise click.UsageError(
                f"{len(files)} inputs: give --out-dir DIR for one output per input"
            )
        return [(files[0] if files else "-", None)]
    inputs = [p for f in files for p in _expand(f)]
    pairs, seen = [], {}
    for path in inputs:
        if path == "-":
            raise click.UsageError("--out-dir needs named input files, not stdin ('-')")
        out = os.path.join(out_dir, os.path.basename(path) + suffix)
        if out in seen:
            raise click.UsageError(f"{seen[out]} and {path} would both write {out}")
        seen[out] = path
        pairs.append((path, out))
    os.makedirs(out_dir, exist_ok=True)
    return pairs


def _expand(f: str) -> list[str]:
    """A FILE argument as input paths: a directory's files, a glob's matches, or itself."""
    if os.path.isdir(f):
        names = sorted(n for n in os.listdir(f) if not n.startswith("."))
        paths = [os.path.join(f, n) for n in names if os.path.isfile(os.path.join(f, n))]
        if not paths:
            raise DataError(f"{f}: a directory with no input files")
        return paths
    if not os.path.exists(f) and any(c in f for c in "*?["):
        paths = sorted(p for p in glob.glob(f) if os.path.isfile(p))
        if not paths:
            raise DataError(f"{f}: no such file, and no file matches it")
        return paths
    return [f]


def _remove_unfinished(out_dir: str, names: set[str]) -> None:
    """Delete what a killed run left of the outputs about to be written (atomic_write's
    temporary files ``.tmp-XXXXXXXX-NAME``); another run's files are left alone."""
    for entry in os.scandir(out_dir):
        m = _TEMP_NAME.fullmatch(entry.name)
        if m and m.group(1) in names and entry.is_file(follow_symlinks=False):
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                pass


@contextmanager
def _sink(out: str | None, echo):
    """A function writing one block of lines (no final newline) to ``out``, or to stdout
    with ``echo`` when ``out`` is None; a file is renamed into place when the block ends
    without an error, and removed otherwise."""
    if out is None:
        yield echo
        return
    with checkpoint.atomic_write(out, "wb") as f:
        yield lambda text: f.write(text.encode("utf-8") + b"\n")


@contextmanager
def _whole_lines():
    """``echo(text)``: click.echo, with a Ctrl-C that arrives during it raised after it."""
    state = {"writing": False, "held": False}

    def on_sigint(signum, frame):
        if state["writing"] and not state["held"]:
            state["held"] = True
            return
        raise KeyboardInterrupt

    def echo(text: str) -> None:
        state["writing"] = True
        try:
            click.echo(text)
        finally:
            state["writing"] = False
        if state["held"]:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield click.echo
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield echo
    finally:
        signal.signal(signal.SIGINT, previous)
