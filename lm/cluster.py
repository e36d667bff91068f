"""Scoring on a Dask cluster: the chunks one process would score, spread over workers.

The only module that imports Dask (``dask`` and ``distributed``, the optional extra
``cluster``: ``pip install 'lm[cluster]'``). Without them, ``connect`` and the functions that
take a client raise ClusterError saying what to install; everything else in ``lm`` works.

Who does what:

    client (this process)   reads and decodes the input (``lm.data.read_lines``: the same
                            file:line errors as one process), cuts it into the chunks that
                            ``scoring.score_chunks`` would form (``chunk_lines`` lines each),
                            submits them, takes the results back in input order and sums the
                            corpus totals.
    worker                  loads the model once, runs one BLAS thread, scores a chunk with
                            ``scoring.score_chunk`` and returns the chunk's output lines
                            already formatted (one str) and its per-token numbers packed in
                            three flat arrays (ids, OOV flags, log10 probabilities) with the
                            tokens per sentence: plain str and numpy arrays, no lm objects.

What is sent to a worker per chunk: how to load the model (``model_loader``: ``lm.load`` and
the model directory's absolute path), the chunk's lines (a list of str), the scoring options
and the formatting function (by reference: a module-level function of ``lm``). The model
itself is never sent: each worker loads it from the path, once, and keeps it (cached by
loader and by the size and mtime of the files, so a model retrained in place is reloaded). Every worker must therefore read the model
directory at the same absolute path as the client (a shared file system, or a copy at the
same place on every machine). A worker that cannot raises ClusterError("worker ADDRESS:
cannot load the model: PATH: ...") and the whole run stops with that one line.

Why the numbers equal one process's bit for bit: a sentence's numbers depend, by float
rounding, on which sentences share its batch and on the BLAS thread count. Workers score
exactly the chunks the single process forms, with the same function, on one BLAS thread
(``lm --threads 1``); the client rebuilds each SentenceScore from the arrays (the same
values) and the caller adds them to its totals in input order, with the same code as one
process.

Streaming: at most ``PER_WORKER`` chunks per worker thread are submitted and not yet taken
back; the client waits for the oldest, so output leaves in input order as chunks complete,
and memory does not grow with the input.

Faults. A worker that dies (killed, out of memory, machine lost) loses nothing: the scheduler
reruns its chunks, unfinished or finished but not yet fetched, on other workers, and since
results are taken by chunk in input order nothing is written twice. A chunk survives
``distributed.scheduler.allowed-failures`` (3 by default) deaths of workers *running* it; at
the next the run stops with ClusterError naming the scheduler and the chunk's lines (raise
the limit on the scheduler, e.g. DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=10, when
workers are pre-empted often). A scheduler that cannot be reached, or that goes away during
the run, is ClusterError naming its address. Ctrl-C (KeyboardInterrupt) cancels the chunks in
flight, and the LocalCluster of ``connect(workers=N)`` is shut down; its workers ignore SIGINT
(see ``_workers_ignoring_sigint``), so a terminal's Ctrl-C reaches only the command.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from tqdm import tqdm

from lm import data, scoring
from lm.errors import ClusterError, DataError, LMError

if TYPE_CHECKING:
    from lm.api import LanguageModel
    from lm.tokenizer import Vocab

Array = np.ndarray
PER_WORKER = 3  # chunks in flight per worker thread: one running, two queued behind it
WAIT_FOR_WORKERS = 60.0  # seconds a scheduler may take to have its first worker
INSTALL = "pip install 'lm[cluster]' (or: pip install dask distributed)"

# the format function a worker applies to each scored sentence: (score, vocab) -> one line
Format = Callable[["scoring.SentenceScore", "Vocab"], str]
Transform = Callable[["scoring.SentenceScore"], "scoring.SentenceScore"]


class Chunk(NamedTuple):
    """Lines scored together: the unit of work of a worker. ``name`` (the file) and ``first``
    (the line number of ``lines[0]``) only label messages; ``extra`` is whatever the caller
    keeps beside the lines (n-best hypotheses, say), never sent to a worker."""

    lines: list[str]
    name: str = "<lines>"
    first: int = 1
    extra: object = None


class ChunkResult(NamedTuple):
    """A scored chunk: ``text``, its formatted output lines joined by newlines (None without a
    format), ``scores``, a SentenceScore per line in input order, and the ``chunk`` scored."""

    text: str | None
    scores: list[scoring.SentenceScore]
    chunk: Chunk | None = None


class _Packed(NamedTuple):
    """What a worker sends back for a chunk of n lines (the lines themselves stay with the
    client): text as in ChunkResult; tokens (n,) int64 per sentence; ids, oov, log10probs
    the sentences' per-token arrays of SentenceScore, concatenated: (tokens.sum(),) each."""

    text: str | None
    tokens: Array
    ids: Array
    oov: Array
    log10probs: Array

    def unpack(self, chunk: Chunk, bos: bool, eos: bool) -> ChunkResult:
        cut = np.cumsum(self.tokens)[:-1]
        parts = (np.split(a, cut) for a in (self.ids, self.oov, self.log10probs))
        scores = [
            scoring.SentenceScore(line, ids, oov, lp, bos, eos)
            for line, ids, oov, lp in zip(chunk.lines, *parts)
        ]
        return ChunkResult(self.text, scores, chunk)


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError(f"scoring on a cluster needs Dask: {INSTALL}") from None
    return distributed


# ----- the client: connect, stream chunks, add up -----


@contextmanager
def connect(
    scheduler: str | None = None, workers: int | None = None, quiet: bool = True
) -> Iterator:
    """A ``distributed.Client`` for the cluster whose scheduler is at ``scheduler``, or for a
    LocalCluster of ``workers`` single-threaded worker processes started here and shut down
    when the block is left (normally, on an error or on Ctrl-C).

    The connection waits ``distributed.comm.timeouts.connect`` (Dask's config, 30 s by
    default) for the scheduler, then up to WAIT_FOR_WORKERS seconds for its first worker;
    either failing is ClusterError naming the address. ``quiet`` keeps Dask's own log lines
    (a worker restarted, a connection lost) off stderr, so a failure ends in one line.

    Good: ``with connect(workers=2) as client: perplexity(client, model, "test.txt")``.
    Bad: ``connect("tcp://host:8786", workers=2)``: one or the other (ValueError).
    """
    if (scheduler is None) == (workers is None):
        raise ValueError("connect needs a scheduler address or a number of workers, not both")
    distributed = _distributed()
    level = logging.CRITICAL if quiet else logging.WARNING
    if quiet:  # Dask sets some of its loggers' levels itself: set them all
        for name in ["distributed", *logging.root.manager.loggerDict]:
            if name.split(".")[0] == "distributed":
                logging.getLogger(name).setLevel(level)
    with ExitStack() as stack:
        if workers is not None:
            _workers_ignoring_sigint(stack)
            with _interrupt_held():  # a half-started LocalCluster cannot be shut down
                cluster = stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        dashboard_address=None,
                        # no dashboard; Dask's HTTP routes on any free port (not 8787, which
                        # a second run would find taken, with a warning)
                        scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                        silence_logs=level,
                    )
                )
            client = stack.enter_context(distributed.Client(cluster, set_as_default=False))
        else:
            try:
                client = distributed.Client(scheduler, set_as_default=False)
            except (OSError, ValueError, TypeError) as e:  # refused, timed out, bad address
                raise ClusterError(f"{scheduler}: cannot reach the Dask scheduler ({e})") from None
            stack.enter_context(client)
            try:
                client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
            except (OSError, TimeoutError):
                raise ClusterError(
                    f"{scheduler}: the Dask scheduler has no workers after "
                    f"{WAIT_FOR_WORKERS:g} s (start some: dask worker {scheduler})"
                ) from None
        yield client


def _workers_ignoring_sigint(stack: ExitStack) -> None:
    """Have the LocalCluster's worker processes ignore SIGINT from their first instruction.

    Ctrl-C in a terminal reaches the whole process group: started the usual way (spawn),
    the workers would die of it with tracebacks (and be restarted) while the command shuts
    the cluster down. Instead, while ``stack`` is open, Dask forks its worker processes
    (restarted ones too) from a multiprocessing fork server started here with SIGINT
    ignored, which its children inherit; this process ignores SIGINT only for the few
    milliseconds it takes to start that server. Not possible (Windows, or not the main
    thread): nothing changes.
    """
    import multiprocessing
    import multiprocessing.forkserver

    import dask

    if (
        "forkserver" not in multiprocessing.get_all_start_methods()
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    multiprocessing.get_context("forkserver").set_forkserver_preload(["distributed"])
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        multiprocessing.forkserver.ensure_running()  # no-op if this process started it before
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler if handler is None else handler)
    stack.enter_context(
        dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    )


@contextmanager
def _interrupt_held():
    """A Ctrl-C during the block is raised at its end (a second one at once)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = []

    def on_sigint(signum, frame):
        if held:
            raise KeyboardInterrupt
        held.append(signum)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise KeyboardInterrupt


def read_chunks(lines: Iterable[str], chunk_lines: int, name: str = "<lines>") -> Iterator[Chunk]:
    """Cut ``lines`` into the chunks ``scoring.score_chunks`` forms (``chunk_lines`` lines
    each, the last one shorter); when reading fails (a DataError: a line that is not UTF-8),
    the lines read before it are yielded first, then the error is raised, as there."""
    first = 1
    for chunk in scoring.chunked(lines, chunk_lines):
        yield Chunk(chunk, name, first)
        first += len(chunk)


def in_order(
    client,
    model: LanguageModel | str,
    items: Iterable,
    bos: bool = True,
    eos: bool = True,
    batch_size: int = scoring.BATCH_SIZE,
    format: Format | None = None,
    transform: Transform | None = None,
) -> Iterator:
    """Score every Chunk of ``items`` on the cluster; yield a ChunkResult for each, in input
    order, as soon as it and every chunk before it are done. Anything in ``items`` that is
    not a Chunk (a marker, e.g. the end of a file) is yielded unchanged in its place.

    ``client`` None scores in this process, one chunk at a time (then ``model`` must be a
    LanguageModel). Otherwise ``model`` is what ``model_loader`` takes: a model directory, a
    LanguageModel loaded from one, or a loader; at most PER_WORKER chunks per worker thread are
    in flight. ``transform`` (SentenceScore -> SentenceScore, e.g. a penalty for OOV words)
    is applied on the worker to every score, before ``format`` and before it is sent back;
    like ``format``, it must be picklable (a module-level function, or a partial of one). A DataError raised while ``items`` is read is raised after the chunks read
    before it have been yielded. Leaving early (an error, Ctrl-C) cancels the chunks still
    in flight.
    """
    items = iter(items)
    if client is None:
        if isinstance(model, (str, os.PathLike)):
            raise TypeError("scoring in this process needs a LanguageModel, not a path")
        for item in items:
            if isinstance(item, Chunk):
                r = _score(model, item.lines, bos, eos, batch_size, format, transform)
                item = r._replace(chunk=item)
            yield item
        return
    loader = model_loader(model)
    threads = _guard(client, Chunk([]), client.nthreads)
    limit = PER_WORKER * max(1, sum(threads.values()))
    pending: deque = deque()  # (item, future or None), in input order
    running = 0
    error = None
    try:
        while True:
            try:
                item = next(items)
            except StopIteration:
                break
            except DataError as e:  # reading stopped: what was read is still scored
                error = e
                break
            if not isinstance(item, Chunk):
                pending.append((item, None))
                continue
            with warnings.catch_warnings():  # Dask's advice on a chunk of very long lines
                warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
                future = _guard(
                    client,
                    item,
                    functools.partial(
                        client.submit,
                        _score_on_worker,
                        *(loader, item.lines, bos, eos, batch_size, format, transform),
                        pure=False,
                    ),
                )
            pending.append((item, future))
            running += 1
            while running >= limit:
                done = pending.popleft()
                running -= done[1] is not None
                yield _result(client, *done, bos, eos)
        while pending:
            yield _result(client, *pending.popleft(), bos, eos)
    finally:
        futures = [f for _, f in pending if f is not None]
        if futures and client.status == "running":
            with contextlib.suppress(Exception):  # the cluster may be gone: nothing to cancel
                client.cancel(futures)
    if error is not None:
        raise error


def _result(client, item, future, bos: bool, eos: bool):
    if future is None:
        return item
    return _guard(client, item, future.result).unpack(item, bos, eos)


def _guard(client, chunk: Chunk, call):
    """``call()``, with what Dask raises when the cluster fails turned into ClusterError."""
    distributed = _distributed()
    address = client.scheduler.address
    try:
        return call()
    except distributed.KilledWorker as e:
        last = chunk.first + len(chunk.lines) - 1
        deaths = e.allowed_failures + 1
        raise ClusterError(
            f"{address}: the workers scoring lines {chunk.first}-{last} of {chunk.name} died "
            f"{deaths} time{'s' * (deaths > 1)} (Dask's allowed-failures is "
            f"{e.allowed_failures}); see the workers' logs"
        ) from None
    except LMError:
        raise
    except RuntimeError as e:
        if "deserializ" not in str(e):
            raise
        raise ClusterError(  # e.g. another version of lm on the scheduler
            f"{address}: the scheduler cannot read lm's task ({_reason(e.__cause__ or e)}): "
            "install the same lm where the scheduler, the workers and this command run"
        ) from None
    except (OSError, TimeoutError, distributed.CancelledError) as e:
        raise ClusterError(f"{address}: lost the Dask scheduler ({_reason(e)})") from None


def _reason(e: BaseException) -> str:
    if isinstance(getattr(e, "reason", None), str):  # a future cancelled by Dask
        return e.reason
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def model_loader(model) -> functools.partial:
    """How a worker gets the model: a call of a module-level function (sent by name) with
    absolute paths, e.g. ``functools.partial(lm.load, "/data/model")``.

    ``model`` is a model directory, a model loaded from one (its ``path``), or such a
    ``functools.partial`` already (for a model built from several files: an RNN mixed with
    an n-gram, say), returned as it is.
    """
    from lm.api import load

    if isinstance(model, functools.partial):
        return model
    if isinstance(model, (str, os.PathLike)):
        return functools.partial(load, os.path.abspath(os.fspath(model)))
    if getattr(model, "path", None) is None:
        raise TypeError(
            "a model scored on a cluster must come from lm.load(DIRECTORY) (workers load it "
            "from that directory) or be given as functools.partial(loader, paths...)"
        )
    return functools.partial(load, os.path.abspath(model.path))


def perplexity(
    client,
    model: LanguageModel | str | os.PathLike,
    lines_or_path,
    bos: bool = True,
    eos: bool = True,
    batch_size: int = scoring.BATCH_SIZE,
    progress: bool = True,
    errors: str = "strict",
) -> scoring.CorpusPerplexity:
    """``scoring.corpus_perplexity`` computed on the workers of ``client`` (a
    ``distributed.Client``): the same result, bit for bit, as one process with one BLAS
    thread. ``model`` is a model directory every worker can read, or a LanguageModel loaded
    from one. A progress bar counting sentences goes to stderr for a file, when stderr is a
    terminal and ``progress``.

    Good: ``perplexity(client, "model_dir", "test.txt")``.
    Bad: ``perplexity("tcp://host:8786", model, "test.txt")``: a Client, not its address
    (TypeError; ``connect`` makes one).
    """
    distributed = _distributed()
    if not isinstance(client, distributed.Client):
        raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}")
    if isinstance(lines_or_path, (str, os.PathLike)):
        name = os.fspath(lines_or_path)
        lines = data.read_lines(name, errors)
        bar = tqdm(unit=" sentences", desc=os.path.basename(name), leave=False,
                   disable=None if progress else True)  # fmt: skip
    else:
        name, lines, bar = "<lines>", lines_or_path, tqdm(disable=True)
    totals = scoring.CorpusTotals()
    with bar:
        chunks = read_chunks(lines, scoring.CHUNK_LINES, name)
        for r in in_order(client, model, chunks, bos, eos, batch_size):
            for sentence in r.scores:
                totals.add(sentence)
            bar.update(len(r.scores))
    return totals.result()


# ----- the worker -----

_MODELS: dict[tuple, tuple[tuple, LanguageModel]] = {}  # loader -> (files' stamp, model)
_LOCK = threading.Lock()  # a worker with several threads loads a model once
_prepared = False


def _score_on_worker(
    loader: functools.partial,
    lines: list[str],
    bos: bool,
    eos: bool,
    batch_size: int,
    format: Format | None,
    transform: Transform | None,
) -> _Packed:
    """The task a worker runs for one chunk."""
    r = _score(_worker_model(loader), lines, bos, eos, batch_size, format, transform)

    def flat(name: str, dtype) -> Array:
        return np.concatenate([getattr(s, name) for s in r.scores] or [np.zeros(0, dtype)])

    return _Packed(
        r.text,
        np.array([s.tokens for s in r.scores], dtype=np.int64),
        flat("ids", np.int32),
        flat("oov", bool),
        flat("log10probs", np.float64),
    )


def _score(
    model: LanguageModel,
    lines: list[str],
    bos: bool,
    eos: bool,
    batch_size: int,
    format: Format | None,
    transform: Transform | None,
) -> ChunkResult:
    scores = scoring.score_chunk(model, lines, bos, eos, batch_size)
    if transform is not None:
        scores = [transform(s) for s in scores]
    text = None if format is None else "\n".join(format(s, model.vocab) for s in scores)
    return ChunkResult(text, scores)


def _worker_model(loader: functools.partial) -> LanguageModel:
    """``loader()``, called on first use in this worker process and kept (one model at a
    time) while the files its path arguments name keep their size and mtime."""
    global _prepared
    with _LOCK:
        if not _prepared:
            _prepare_worker()
            _prepared = True
        f = loader.func
        key = (f.__module__, f.__qualname__, loader.args, tuple(sorted(loader.keywords.items())))
        stamp = _stamp([a for a in loader.args if isinstance(a, str) and os.path.isabs(a)])
        cached = _MODELS.get(key)
        if stamp is not None and cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            model = loader()
        except (LMError, OSError) as e:
            raise ClusterError(f"worker {_worker_address()}: cannot load the model: {e}") from None
        _MODELS.clear()
        _MODELS[key] = (stamp, model)
        return model


def _prepare_worker() -> None:
    """One BLAS thread for every product (the thread count changes the rounding: one matches
    ``lm --threads 1``), and glibc keeping freed memory, as an ``lm`` process does."""
    from lm.cli.common import keep_freed_memory
    from lm.core import limit_blas_threads

    limit_blas_threads(1)
    keep_freed_memory()


def _stamp(paths: list[str]) -> tuple | None:
    """(path, size, mtime) of each path that is a file and of each non-hidden file in each
    path that is a directory; None when one is missing or cannot be read."""
    entries = []
    try:
        for path in paths:
            if os.path.isdir(path):
                entries += [
                    (e.path, e.stat())
                    for e in os.scandir(path)
                    if e.is_file() and not e.name.startswith(".")
                ]
            else:
                entries.append((path, os.stat(path)))
    except OSError:
        return None
    return tuple(sorted((p, st.st_size, st.st_mtime_ns) for p, st in entries))


def _worker_address() -> str:
    try:
        return _distributed().get_worker().address
    except (ValueError, ClusterError):  # not in a worker
        return "?"
