"""Training a language model: the loop, the update step, validation, checkpoints, signals and
the time budget.

The PyTorch word-language-model recipe in numpy: the training stream (see ``lm.data``) is cut
into B parallel columns and walked in windows of T steps; the state is carried from one
window to the next without backpropagating into the previous window (and reset to zeros at the
start of every epoch). Within a window, BPTT is full or truncated to a horizon K (``lm.core``).

Each idea has its own home; this module puts them together (``Trainer``: set-up, the run,
validation and the schedule's verdict at the end of each epoch):

- setting up a new run, or one resumed with its changes and data checks: ``lm.trainsetup``;
- the epoch loop and the update step (one window: loss, gradients, the non-finite guard,
  clipping, the optimiser, the weight average): ``lm.trainloop``, over ``lm.optim``'s
  ``guarded_update`` and ``WeightAverage``;
- signals and the time budget: ``lm.trainstop``;
- the checkpoints and files written into the model directory: ``lm.trainsave``; the line per
  epoch, ``log.jsonl``, the plot and the summary: ``lm.trainlog``;
- after each epoch the validation perplexity decides whether the epoch is kept or rolled back
  and what the learning rate becomes: ``lm.schedule.decide``, a pure function;
- the hyperparameters and the progress counters are ``lm.trainconfig``'s dataclasses;
- what ``resume.npz`` holds, and its validation, is ``lm.checkpoint``'s (``Resume``).

Weight averaging (``ema`` = a decay d in (0, 1), 0.999 by default, 0 for none;
``lm.optim.WeightAverage``): the average of the weights is what is validated, kept as the best
weights and saved; the optimiser goes on from the raw weights, and a rolled-back epoch resets
both to the best weights. Averaging removes much of the noise of the last updates, so at a
constant rate it reaches a good model sooner; once the rate has been decayed, both end at about
the same perplexity (measured on the synthetic corpus).

The model directory has one writer: a run holds ``checkpoint.DirectoryLock`` on it from
``Trainer.start``/``Trainer.resume`` to the end of ``run`` (a Trainer that is not run holds it
until ``close``, or the end of its ``with`` block). It becomes a model (``config.json``
and ``weights.npz``) at the end of the first epoch; before that it holds at most
``tokenizer.json`` and ``resume.npz``, which ``--resume`` continues from. A new run (with
``force`` when the directory holds a model) clears what an earlier run left there once its
own data has been read.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import numpy as np

from lm import checkpoint, optim, schedule, trainlog, trainsetup
from lm.data import batchify, encode_file, n_windows, sentence_columns, windows
from lm.errors import DataError, LMError, ModelFileError, TrainingError
from lm.metrics import perplexity
from lm.model import Network
from lm.schedule import SCHEDULES
from lm.tokenizer import EOS, Vocab
from lm.trainconfig import (
    DEFAULT_CLIP,
    DEFAULT_LR,
    RESUMABLE,
    Progress,
    TrainConfig,
    VocabConfig,
)
from lm.trainloop import EpochLoop
from lm.trainsave import Checkpoints, all_finite
from lm.trainstop import Interrupted, Stopping

Array = np.ndarray

__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_LR",
    "RESUMABLE",
    "SCHEDULES",
    "Interrupted",
    "Progress",
    "TrainConfig",
    "Trainer",
    "VocabConfig",
    "evaluate",
]


# ----------------------------------------------------------------------------- evaluation


def evaluate(
    net: Network,
    stream: Array,
    independent: bool,
    B: int = 32,
    T: int = 128,
    stop: Callable[[], bool] | None = None,
):
    """Total natural-log probability of a stream and the number of predicted tokens.

    Every word and every ``</s>`` is predicted (as ``lm.perplexity`` counts); the opening ``</s>``
    is input only. The stream is cut into B columns at sentence starts, each starting from a
    zero state with ``</s>`` as input. With ``independent`` the state is also reset before
    every sentence, which makes the result equal to scoring each sentence alone (``lm
    perplexity``); otherwise the state is carried from one sentence to the next in a column.

    ``stop`` is asked before every window of T steps; when it returns True the evaluation is
    abandoned and None returned (training uses it to react to Ctrl-C within a window).
    """
    columns, mask = sentence_columns(stream, B)
    total, S = 0.0, net.zero_state(columns.shape[1])
    for i, x, y in windows(columns, T):
        if stop is not None and stop():
            return None
        keep = (x != EOS)[..., None].astype(net.dtype) if independent else None
        lp, states = net.target_logprobs(x, y, S, keep)
        total += float(lp[mask[i * T : i * T + len(x)]].sum())
        S = states[-1]
    return total, int(mask.sum())


# ----------------------------------------------------------------------------- the run


class Trainer(EpochLoop, Stopping, Checkpoints):
    """One training run writing into ``out`` (a model directory), built whole by ``start``
    (a new run) or ``resume`` (from ``out/resume.npz``); ``run`` trains it to the end.

    The Trainer holds the lock on ``out`` from ``start``/``resume`` on; ``run`` releases it
    when it ends, however it ends. One that may not be run releases it with ``close``, or is
    used as a context manager::

        with Trainer.start(out, train, valid, mc_args, tc, vc) as trainer:
            log(f"vocabulary: {trainer.vocab.size} words")  # an error here releases out too
            summary = trainer.run()

    State: ``net`` (the current weights theta), ``opt`` (the optimiser), ``average`` (the
    weight average, or None), ``best_params`` (the best weights so far), ``carry`` ((B, n_state)
    the state carried into the next window, or None before the first), ``rng`` (dropout
    masks), ``progress`` (counters, the schedule's state, history).

    The epoch loop and the update step are ``EpochLoop``'s (``lm.trainloop``), signals and the
    time budget ``Stopping``'s (``lm.trainstop``), the files written ``Checkpoints``'
    (``lm.trainsave``).
    """

    def __init__(
        self,
        out: str,
        net: Network,
        vocab: Vocab,
        tc: TrainConfig,
        vc: VocabConfig,
        *,
        progress: Progress,
        optimizer,
        rng: np.random.Generator,
        average: optim.WeightAverage | None = None,
        best_params: dict[str, Array] | None = None,
        carry: Array | None = None,
        stream: Array | None = None,
        lock: checkpoint.DirectoryLock | None = None,
        fresh: bool = False,
        notes: tuple[str, ...] = (),
        show_progress: bool = True,
    ):
        self.out, self.net, self.vocab, self.tc, self.vc = out, net, vocab, tc, vc
        self.progress, self.opt, self.rng, self.average = progress, optimizer, rng, average
        if best_params is None:
            best_params = {k: v.copy() for k, v in self._weights().items()}
        self.best_params = best_params
        self.carry = carry
        self.show_progress = show_progress
        self.notes = list(notes)  # said (logged) when the run starts
        self._stream = stream  # the encoded training file, when already read
        self._lock = lock
        self._fresh = fresh  # a new run: clear what an earlier run left in out
        self._stop_signal: int | None = None
        self._last_checkpoint = time.monotonic()

    # --- set-up

    @classmethod
    def start(
        cls,
        out,
        train_path,
        valid_path,
        mc_args: dict,
        tc: TrainConfig,
        vc: VocabConfig,
        show_progress: bool = True,
        force: bool = False,
    ) -> Trainer:
        """A new run: read the training file, build the vocabulary and the initial network
        (``lm.trainsetup.new_run``).

        ``out`` is locked (one writer) and refused when it holds a model, unless ``force``.
        """
        out = os.fspath(out)
        tc = tc.resolved()
        lock = trainsetup.lock(out)
        try:
            setup = trainsetup.new_run(out, train_path, valid_path, mc_args, tc, vc, force)
            return cls(out, lock=lock, show_progress=show_progress, **setup)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def resume(
        cls,
        out,
        show_progress: bool = True,
        *,
        changes: dict | None = None,
        force: bool = False,
    ) -> Trainer:
        """The run checkpointed in ``out/resume.npz``, as it was when it was saved
        (``lm.trainsetup.resumed_run``).

        ``changes`` may set the fields in ``RESUMABLE`` (epochs, max_minutes,
        checkpoint_minutes, on_nan, lr); they are recorded in the next epoch's log record.
        A training or validation file that changed since the checkpoint is refused unless
        ``force`` (the run then goes on with the new data and is no longer reproducible).
        """
        out = os.fspath(out)
        if not os.path.isdir(out):
            problem = "not a directory" if os.path.exists(out) else "no such model directory"
            raise ModelFileError(f"{out}: {problem}")
        lock = trainsetup.lock(out)
        try:
            setup = trainsetup.resumed_run(out, changes or {}, force)
            return cls(out, lock=lock, show_progress=show_progress, **setup)
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        """Release the model directory (``run`` does, when it ends; so does leaving a ``with``
        block). Closing twice is harmless."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the run

    def run(self, log=print) -> dict:
        """Train until the schedule, --epochs or --max-minutes ends the run; return the
        summary. Raises Interrupted (after a checkpoint) on SIGINT/SIGTERM, KeyboardInterrupt
        at once on a second one, TrainingError on a non-finite loss (``on_nan="stop"``)."""
        if self._lock is not None and not self._lock.held:
            raise LMError(f"{self.out}: this run has ended; resume it with a new Trainer")
        try:
            # overflow is expected when training diverges: the guard reports it, not numpy
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                return self._run(log)
        finally:
            self.close()

    def _run(self, log) -> dict:
        tc, st = self.tc, self.progress
        for note in self.notes:
            log(note)
        stream = (
            self._stream if self._stream is not None else encode_file(st.train_path, self.vocab)
        )
        columns = batchify(stream, tc.batch_size)
        if columns.shape[0] < 2:
            raise DataError(
                f"{st.train_path}: too short for --batch-size {tc.batch_size} "
                f"(needs at least {2 * tc.batch_size} tokens); use a smaller --batch-size"
            )
        self._check_window(n_windows(columns, tc.bptt))
        valid = encode_file(st.valid_path, self.vocab) if st.valid_path else None
        if self._fresh:
            checkpoint.clear_model_files(self.out)
            self._fresh = False
        else:
            checkpoint.remove_temp_files(self.out)  # left by a run killed mid-save (kill -9)
        finished = self._finished()
        if finished:
            log(f"nothing to do: {finished}")
        old = self._install_signals()
        try:
            while self._finished() is None:
                self._epoch(columns, valid, log)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return self.summary(columns.size)

    # --- the end of an epoch

    def _weights(self) -> dict[str, Array]:
        """The weights validated and kept: the average with --ema, else the current ones."""
        return self.net.params if self.average is None else self.average.params

    def _end_epoch(self, valid: Array | None, log) -> None:
        tc, st = self.tc, self.progress
        if not all_finite(self._weights()):
            raise TrainingError(
                f"the weights became non-finite in epoch {st.epoch + 1}; {self.kept_note()}; "
                "try a smaller --lr or --clip-norm"
            )
        record = {
            "epoch": st.epoch + 1,
            "train_ppl": perplexity(-st.epoch_loss, st.epoch_tokens),
            "lr": st.lr,
            "tokens": st.epoch_tokens,
            "tokens_per_second": st.epoch_tokens / max(st.epoch_seconds, 1e-9),
        }
        t0 = time.perf_counter()
        valid_ppl = None
        if valid is not None:
            validated = Network.build(self.net.config, self._weights())
            result = evaluate(
                validated, valid, tc.independent, tc.eval_batch_size, stop=self._stopping
            )
            if result is None:  # Ctrl-C: resuming validates this epoch again
                self._pause()
            valid_ppl = perplexity(*result)
        record.update(valid_ppl=valid_ppl, **self._judge(valid_ppl))
        st.seconds += time.perf_counter() - t0
        record["seconds"] = st.seconds
        if st.changes:
            record["changed"] = st.changes
            st.changes = {}
        st.epoch += 1
        st.window = 0
        line = trainlog.describe(record)
        st.history.append(trainlog.json_safe(record))
        self.save_best()
        self._append_log()
        self.save_resume()
        self._plot()
        log(line)

    def _judge(self, valid_ppl: float | None) -> dict:
        """Keep or roll back the epoch and set the next rate (``lm.schedule.decide``)."""
        st = self.progress
        d = schedule.decide(self.tc.schedule_rule(), st.rate_state(), valid_ppl)
        if d.accepted:
            self.best_params = {k: v.copy() for k, v in self._weights().items()}
        else:  # roll back: this epoch's weights (and their average) are discarded
            for k, v in self.best_params.items():
                self.net.params[k][...] = v
            if self.average is not None:
                self.average.reset(self.best_params)
        st.set_rate_state(d.state)
        self.opt.lr = st.lr
        return {"accepted": d.accepted, "rolled_back": not d.accepted, "next_lr": st.lr}

    def summary(self, train_tokens: int) -> dict:
        """The run in numbers (``--json``): finite numbers or null, never NaN or Infinity."""
        return trainlog.summary(self.progress, train_tokens, self.out)
