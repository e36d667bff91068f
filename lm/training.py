"""Training a language model: the loop, the update step, validation, checkpoints, signals and
the time budget.

The PyTorch word-language-model recipe in numpy: the training stream (see ``lm.data``) is cut
into B parallel columns and walked in windows of T steps; the state is carried from one
window to the next without backpropagating into the previous window (and reset to zeros at the
start of every epoch). Within a window, BPTT is full or truncated to a horizon K (``lm.core``).

Each idea has its own home; this module puts them together:

- after each epoch the validation perplexity decides whether the epoch is kept or rolled back
  and what the learning rate becomes: ``lm.schedule.decide``, a pure function;
- the update step (the non-finite guard, value and global-norm clipping, the optimiser) and
  the weight average (``--ema``) are ``lm.optim``'s;
- the hyperparameters and the progress counters are ``lm.trainconfig``'s dataclasses;
- what ``resume.npz`` holds, and its validation, is ``lm.checkpoint``'s (``Resume``).

Weight averaging (``ema`` = a decay d in (0, 1), off by default; ``lm.optim.WeightAverage``):
the average of the weights is what is validated, kept as the best weights and saved; the
optimiser goes on from the raw weights, and a rolled-back epoch resets both to the best
weights. Averaging removes much of the noise of the last updates, so at a constant rate it
reaches a good model sooner; once the rate has been decayed, both end at about the same
perplexity (measured on the synthetic corpus).

The model directory has one writer: a run holds ``checkpoint.DirectoryLock`` on it from
``Trainer.start``/``Trainer.resume`` to the end of ``run``. It becomes a model (``config.json``
and ``weights.npz``) at the end of the first epoch; before that it holds at most
``tokenizer.json`` and ``resume.npz``, which ``--resume`` continues from. A new run (with
``force`` when the directory holds a model) clears what an earlier run left there once its
own data has been read.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np
from tqdm.auto import tqdm

from lm import cells, checkpoint, memory, optim, schedule
from lm.data import batchify, encode_file, n_windows, read_lines, sentence_columns, windows
from lm.errors import DataError, LMError, ModelFileError, TrainingError
from lm.metrics import perplexity
from lm.model import ModelConfig, Network
from lm.schedule import SCHEDULES
from lm.tokenizer import EOS, Vocab, count_words
from lm.trainconfig import (
    DEFAULT_CLIP,
    DEFAULT_LR,
    RESUMABLE,
    Progress,
    TrainConfig,
    VocabConfig,
    default_min_count,
)

Array = np.ndarray

# A window whose mean cross-entropy exceeds ln(float max) has a perplexity that overflows: as
# useless as a NaN, and treated as one (it happens when training diverges, e.g. --lr 1e6).
MAX_MEAN_LOSS = math.log(sys.float_info.max)

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


class Interrupted(LMError):
    """Training was stopped by SIGINT/SIGTERM after saving a checkpoint."""


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


# ----------------------------------------------------------------------------- the loop


class Trainer:
    """One training run writing into ``out`` (a model directory), built whole by ``start``
    (a new run) or ``resume`` (from ``out/resume.npz``); ``run`` trains it to the end.

    State: ``net`` (the current weights theta), ``opt`` (the optimiser), ``average`` (the
    weight average, or None), ``best_params`` (the best weights so far), ``carry`` ((B, n_state)
    the state carried into the next window, or None before the first), ``rng`` (dropout
    masks), ``progress`` (counters, the schedule's state, history).
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
        """A new run: read the training file, build the vocabulary and the initial network.

        ``out`` is locked (one writer) and refused when it holds a model, unless ``force``.
        """
        out = os.fspath(out)
        tc = tc.resolved()
        lock = _lock(out)
        try:
            if checkpoint.is_model_dir(out) and not force:
                raise LMError(f"{out}: already holds a model; use --force to overwrite it")
            if vc.min_count is None:
                counts = count_words(read_lines(train_path), vc.lowercase)
                vc = replace(vc, min_count=default_min_count(counts))
            vocab = Vocab.build(read_lines(train_path), vc.vocab_size, vc.min_count, vc.lowercase)
            if (
                vocab.size <= 3
                and vc.min_count > 1
                and Vocab.build(read_lines(train_path)).size > 3
            ):
                raise DataError(
                    f"{train_path}: no word occurs {vc.min_count} times or more (the default "
                    "vocabulary keeps words seen twice); give --min-count 1 to keep every word"
                )
            if vocab.size <= 3:
                raise DataError(f"{train_path}: holds no words (empty or whitespace only)")
            stream = encode_file(train_path, vocab)
            tc = tc.resolved(n_tokens=len(stream) - 1)  # the dropout rule reads the size
            counts = np.bincount(stream[1:], minlength=vocab.size)  # the predicted tokens
            mc = ModelConfig.from_counts(vocab.size, counts, **mc_args)  # class boundaries
            memory.check_training(  # now that the vocabulary's size is known
                mc, tc.batch_size, tc.bptt, tc.optimizer, tc.ema,
                dropout=tc.dropout, independent=tc.independent,
            )  # fmt: skip
            rng = np.random.default_rng(tc.seed)
            net = Network.create(mc, rng, counts=counts)  # output bias: log unigram frequencies
            progress = Progress(
                lr=tc.lr,
                train_path=os.path.abspath(train_path),
                valid_path=os.path.abspath(valid_path) if valid_path else None,
                train_digest=checkpoint.fingerprint(train_path),
                valid_digest=checkpoint.fingerprint(valid_path) if valid_path else None,
            )
            return cls(
                out,
                net,
                vocab,
                tc,
                vc,
                progress=progress,
                optimizer=optim.make(tc.optimizer, tc.lr, tc.l2),
                rng=rng,
                average=optim.WeightAverage(tc.ema, net.params) if tc.ema else None,
                stream=stream,
                lock=lock,
                fresh=True,
                show_progress=show_progress,
            )
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
        """The run checkpointed in ``out/resume.npz``, as it was when it was saved.

        ``changes`` may set the fields in ``RESUMABLE`` (epochs, max_minutes,
        checkpoint_minutes, on_nan, lr); they are recorded in the next epoch's log record.
        A training or validation file that changed since the checkpoint is refused unless
        ``force`` (the run then goes on with the new data and is no longer reproducible).
        """
        out = os.fspath(out)
        if not os.path.isdir(out):
            problem = "not a directory" if os.path.exists(out) else "no such model directory"
            raise ModelFileError(f"{out}: {problem}")
        lock = _lock(out)
        try:
            path = os.path.join(out, "resume.npz")
            if not os.path.exists(path) and not checkpoint.is_model_dir(out):
                raise LMError(
                    f"{out}: nothing to resume (the run stopped before its first checkpoint); "
                    "start it again (no --force needed)"
                )
            r = checkpoint.load_resume(path)
            vocab = checkpoint.load_vocab(out, r.config.n_vocab)
            best = None
            if checkpoint.is_model_dir(out):  # after the first epoch: the best weights so far
                best_net, _, _ = checkpoint.load_model(out)
                if best_net.config != r.config:
                    raise ModelFileError(
                        f"{out}: config.json and resume.npz describe different models"
                    )
                best = best_net.params
            progress = r.progress
            tc, changed = _apply_changes(r.train_config, progress, changes or {})
            notes = [_resuming_line(out, progress, changed)]
            notes += _check_data(progress, force)
            opt = optim.make(tc.optimizer, progress.lr, tc.l2)
            opt.load_state_dict(r.optimizer)
            average = None
            if r.average is not None:
                average = optim.WeightAverage.from_state_dict(tc.ema, r.average)
            return cls(
                out,
                Network.build(r.config, r.params),
                vocab,
                tc,
                r.vocab_config,
                progress=progress,
                optimizer=opt,
                rng=r.rng,
                average=average,
                best_params=best,
                carry=r.carry,
                lock=lock,
                notes=tuple(notes),
                show_progress=show_progress,
            )
        except BaseException:
            lock.release()
            raise

    def close(self) -> None:
        """Release the model directory (``run`` does, when it ends)."""
        if self._lock is not None:
            self._lock.release()

    # --- checkpoints

    def save_resume(self) -> None:
        """Write resume.npz (``checkpoint.Resume``): current weights, optimiser, average,
        progress, carried state, random generator. The first one writes tokenizer.json too."""
        st = self.progress
        if not _all_finite(self.net.params) or (
            self.average is not None and not _all_finite(self.average.params)
        ):
            raise TrainingError(
                f"the weights became non-finite (epoch {st.epoch + 1}, window {st.window}); "
                f"{self.kept_note()}; try a smaller --lr or --clip-norm"
            )
        resume = checkpoint.Resume(
            config=self.net.config,
            params=self.net.params,
            optimizer=self.opt.state_dict(),
            average=None if self.average is None else self.average.state_dict(),
            carry=self.carry,
            train_config=self.tc,
            vocab_config=self.vc,
            progress=st,
            rng=self.rng,
        )

        def write():
            if not os.path.isfile(os.path.join(self.out, "tokenizer.json")):
                checkpoint.save_tokenizer(self.out, self.vocab)
            checkpoint.save_resume(os.path.join(self.out, "resume.npz"), resume)

        self._write(write)
        self._last_checkpoint = time.monotonic()

    def save_best(self) -> None:
        """Write the model (config.json, weights.npz, tokenizer.json): the best weights."""
        net = Network.build(self.net.config, self.best_params)
        training = {
            "config": asdict(self.tc),
            "vocab": asdict(self.vc),
            "best_valid_ppl": _finite_or_none(self.progress.best_ppl),
            "epochs": self.progress.epoch,
        }
        self._write(lambda: checkpoint.save_model(self.out, net, self.vocab, training))

    def _has_checkpoint(self) -> bool:
        return os.path.isfile(os.path.join(self.out, "resume.npz")) or checkpoint.is_model_dir(
            self.out
        )

    def kept_note(self) -> str:
        """What a failure leaves: the last checkpoint, when there is one."""
        if self._has_checkpoint():
            return f"the last good checkpoint in {self.out} is kept"
        return "no checkpoint had been written yet"

    def _write(self, fn) -> None:
        try:
            fn()
        except OSError as e:
            intact = (
                "the previous checkpoint is intact"
                if self._has_checkpoint()
                else "no checkpoint has been written yet"
            )
            raise LMError(f"{self.out}: cannot save ({e.strerror or e}); {intact}") from None

    # --- signals

    def _on_signal(self, signum, frame) -> None:
        if self._stop_signal is not None:  # the second one: stop at once, saving nothing more
            raise KeyboardInterrupt
        self._stop_signal = signum

    def _stopping(self) -> bool:
        return self._stop_signal is not None

    def _install_signals(self):
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not in the main thread: leave signals alone
                pass
        return old

    def _pause(self) -> None:
        """Checkpoint and stop: the signal's answer."""
        self.save_resume()
        name = signal.Signals(self._stop_signal).name
        st = self.progress
        raise Interrupted(
            f"{name} received: checkpoint saved in {self.out} (epoch {st.epoch + 1}, "
            f"window {st.window}); continue with: lm train --resume {self.out}"
        )

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

    def _check_window(self, total: int) -> None:
        st = self.progress
        if st.window <= total:
            return
        if "training_file" in st.changes:  # new data (--force): its epoch is over
            st.window = total
            return
        raise ModelFileError(
            f"{os.path.join(self.out, 'resume.npz')}: progress.window {st.window} is past the "
            f"end of an epoch ({total} windows)"
        )

    def _finished(self) -> str | None:
        """Why the run is over, or None while it goes on."""
        st, tc = self.progress, self.tc
        if st.done:
            return f"the {tc.schedule} schedule ended training after epoch {st.epoch}"
        if st.epoch >= tc.epochs:
            return f"--epochs {tc.epochs} reached; give a larger --epochs to train on"
        if self._time_is_up(time.perf_counter()):
            return (
                f"--max-minutes {tc.max_minutes:g} used up ({st.seconds / 60:.2f} min trained); "
                "give a larger --max-minutes to train on"
            )
        return None

    def _epoch(self, columns: Array, valid: Array | None, log) -> None:
        tc, st, net = self.tc, self.progress, self.net
        T, B = tc.bptt, tc.batch_size
        if st.window == 0:
            self.carry = net.zero_state(B)
            st.epoch_loss, st.epoch_tokens, st.epoch_seconds = 0.0, 0, 0.0
        total = n_windows(columns, T)
        bar = tqdm(
            total=total * T * B,
            initial=st.window * T * B,
            unit="tok",
            unit_scale=True,
            desc=f"epoch {st.epoch + 1}",
            disable=not self.show_progress,
            leave=False,
            dynamic_ncols=True,
        )
        t0 = time.perf_counter()
        try:  # closed on any exception too, so that an error message starts a clean line
            for i, x, y in windows(columns, T, start=st.window):
                if self._time_is_up(t0):
                    break
                self._step(x, y, i)
                st.window = i + 1
                bar.update(x.size)
                ppl = perplexity(-st.epoch_loss, st.epoch_tokens)
                bar.set_postfix(ppl=f"{ppl:.1f}", refresh=False)
                if self._stop_signal is not None:
                    self._account(t0)
                    self._pause()
                if time.monotonic() - self._last_checkpoint > 60 * tc.checkpoint_minutes:
                    self._account(t0)
                    t0 = time.perf_counter()
                    self.save_resume()
        finally:
            bar.close()
        self._account(t0)
        self._end_epoch(valid, log)

    def _time_is_up(self, t0: float) -> bool:
        limit = self.tc.max_minutes
        return limit is not None and self.progress.seconds + time.perf_counter() - t0 > 60 * limit

    def _account(self, t0: float) -> None:
        dt = time.perf_counter() - t0
        self.progress.seconds += dt
        self.progress.epoch_seconds += dt

    def _step(self, x: Array, y: Array, i: int) -> None:
        """One update from window i: x, y (T, B) ids."""
        tc, st, net = self.tc, self.progress, self.net
        keep = (x != EOS)[..., None].astype(net.dtype) if tc.independent else None
        loss, grads, s_last = net.loss_and_grads(
            x, y, self.carry, tc.truncate, keep, tc.dropout, self.rng
        )
        mean = loss / x.size
        if not optim.guarded_update(
            net.params, grads, self.opt, mean, tc.clip_value, tc.clip_norm, MAX_MEAN_LOSS
        ):
            if tc.on_nan == "skip":
                st.skipped_batches += 1
                self.carry = net.zero_state(tc.batch_size)
                return
            raise TrainingError(
                f"non-finite loss or gradient at epoch {st.epoch + 1}, step {i + 1}; "
                f"{self.kept_note()}; try a smaller --lr or --clip-norm (or --on-nan skip)"
            )
        st.updates += 1
        if self.average is not None:
            self.average.update(net.params)
        self.carry = s_last
        st.epoch_loss += loss
        st.epoch_tokens += x.size

    def _weights(self) -> dict[str, Array]:
        """The weights validated and kept: the average with --ema, else the current ones."""
        return self.net.params if self.average is None else self.average.params

    def _end_epoch(self, valid: Array | None, log) -> None:
        tc, st = self.tc, self.progress
        if not _all_finite(self._weights()):
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
        line = _describe(record)
        st.history.append(_json_safe(record))
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

    def _append_log(self) -> None:
        path = os.path.join(self.out, "log.jsonl")
        lines = [json.dumps(r) for r in self.progress.history]
        self._write(lambda: _write_text(path, "\n".join(lines) + "\n"))

    def _plot(self) -> None:
        from lm import plots

        h = self.progress.history
        path = os.path.join(self.out, "training.png")
        self._write(
            lambda: plots.perplexity_curve(
                [r["epoch"] for r in h],
                [r["train_ppl"] for r in h],
                [r.get("valid_ppl") for r in h],
                path,
            )
        )

    def summary(self, train_tokens: int) -> dict:
        """The run in numbers (``--json``): finite numbers or null, never NaN or Infinity."""
        st = self.progress
        tokens = sum(r["tokens"] for r in st.history)
        return _json_safe(
            {
                "valid_ppl": st.best_ppl,
                "train_tokens": int(train_tokens),
                "epochs": st.epoch,
                "seconds": round(st.seconds, 3),
                "tokens_per_second": tokens / max(st.seconds, 1e-9),
                "skipped_batches": st.skipped_batches,
                "out": self.out,
            }
        )


# ----------------------------------------------------------------------------- helpers


def _lock(out: str) -> checkpoint.DirectoryLock:
    if os.path.exists(out) and not os.path.isdir(out):
        raise LMError(f"{out}: exists and is not a directory")
    return checkpoint.DirectoryLock(out)


def _apply_changes(tc: TrainConfig, progress: Progress, changes: dict):
    """Apply the resume-time ``changes`` ({field: value}, fields of RESUMABLE) to ``tc`` (a
    new TrainConfig) and ``progress`` (lr: the rate from the next update on); record them in
    ``progress.changes`` as {field: [old, new]}. Returns (tc, {field: (old, new)})."""
    unknown = sorted(set(changes) - set(RESUMABLE))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} cannot change when a run is resumed")
    changed = {}
    for name, value in ((k, changes[k]) for k in RESUMABLE if k in changes):
        old = progress.lr if name == "lr" else getattr(tc, name)
        if value == old:
            continue
        if name == "lr":
            replace(tc, lr=value)  # validates the value
            progress.lr = value
        else:
            tc = replace(tc, **{name: value})
        changed[name] = (old, value)
        first = progress.changes.get(name, [old, value])[0]
        progress.changes[name] = [first, value]
    return tc, changed


def _resuming_line(out: str, progress: Progress, changed: dict) -> str:
    line = f"resuming {out} at epoch {progress.epoch + 1}, window {progress.window}"
    if changed:
        line += " with " + ", ".join(
            f"--{name.replace('_', '-')} {_option_value(new)} (was {_option_value(old)})"
            for name, (old, new) in changed.items()
        )
    return line


def _option_value(v) -> str:
    return "none" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _check_data(progress: Progress, force: bool) -> list[str]:
    """Compare the training and validation files with their fingerprints in the checkpoint.
    A change is refused (LMError), or with ``force`` accepted: returns the warnings to give
    and records the new fingerprints."""
    notes = []
    files = [
        ("training", "train_path", "train_digest"),
        ("validation", "valid_path", "valid_digest"),
    ]
    for what, path_field, digest_field in files:
        path = getattr(progress, path_field)
        if path is None:
            continue
        now = checkpoint.fingerprint(path)
        change = checkpoint.data_change(getattr(progress, digest_field), now)
        if change is None:
            continue
        if not force:
            raise LMError(
                f"{path}: the {what} file changed since the checkpoint ({change}); use --force "
                "to resume with it anyway (the run is then no longer bit for bit reproducible)"
            )
        notes.append(
            f"lm: warning: {path}: the {what} file changed since the checkpoint ({change}); "
            "resuming with it (--force): the run is no longer bit for bit reproducible"
        )
        setattr(progress, digest_field, now)
        progress.changes[f"{what}_file"] = change
    return notes


def _all_finite(params: dict[str, Array]) -> bool:
    return all(np.isfinite(a).all() for a in params.values())


def _finite_or_none(x):
    return x if not isinstance(x, float) or math.isfinite(x) else None


def _json_safe(obj):
    """``obj`` with every NaN or infinite float replaced by None (JSON null): json.dumps would
    write NaN and Infinity, which are not JSON."""
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return _finite_or_none(obj)


def _write_text(path: str, text: str) -> None:
    with checkpoint.atomic_write(path, "w") as f:
        f.write(text)


def _describe(r: dict) -> str:
    valid = "" if r.get("valid_ppl") is None else f"  valid ppl {r['valid_ppl']:.2f}"
    note = "" if r.get("accepted", True) else "  (worse: rolled back)"
    return (
        f"epoch {r['epoch']:3d}  train ppl {r['train_ppl']:.2f}{valid}  lr {r['lr']:.4g}  "
        f"{r['tokens_per_second']:.0f} tok/s  {r['seconds']:.0f}s{note}"
    )
