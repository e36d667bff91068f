"""Training a language model: the loop, validation, the learning-rate schedule, checkpoints.

The PyTorch word-language-model recipe in numpy: the training stream (see ``lm.data``) is cut
into B parallel columns and walked in windows of T steps; the state is carried from one
window to the next without backpropagating into the previous window (and reset to zeros at the
start of every epoch). Within a window, BPTT is full or truncated to a horizon K (``lm.core``).

Schedules (for SGD and Adam alike). After each epoch the validation perplexity is measured;
an epoch that made it worse is rolled back (its weights are discarded), and an epoch that
improved it by less than a factor ``min_improvement`` is a *plateau*.

- ``mikolov`` (rnnlm's, the default): the first plateau starts halving the learning rate after
  every epoch; the next plateau ends training. Quick: it ends a few epochs after the first
  plateau.
- ``plateau``: the learning rate is halved at each plateau only, and training ends at the
  plateau after ``halvings`` halvings. Every rate gets as many epochs as it keeps improving,
  so it spends more epochs (on the synthetic corpus it ended level with ``mikolov``).

Without ``--valid`` training runs for ``epochs`` epochs at a constant rate. The best weights on
validation are what ``weights.npz`` holds.

Weight averaging (``ema`` = a decay d in (0, 1), off by default). Alongside the weights theta
that the optimiser updates, the trainer keeps their exponential moving average
theta_bar <- d_n theta_bar + (1 - d_n) theta after every update n, with the warm-up
d_n = min(d, (1 + n) / (10 + n)) so that the average forgets the initial weights quickly. The
average is what is validated, kept as the best weights and saved; the optimiser goes on from
theta, and a rolled-back epoch resets both to the best weights. Averaging removes much of the
noise of the last updates, so at a constant rate it reaches a good model sooner; once the rate
has been decayed, both end at about the same perplexity (measured on the synthetic corpus).
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from tqdm.auto import tqdm

from lm import activations, checkpoint, optim
from lm.activations import require_trainable
from lm.data import batchify, encode_file, n_windows, read_lines, sentence_columns, windows
from lm.errors import DataError, LMError, TrainingError
from lm.model import ModelConfig, Network
from lm.tokenizer import EOS, Vocab

Array = np.ndarray

DEFAULT_LR = {"sgd": 1.0, "adam": 5e-3}
DEFAULT_CLIP = {"sgd": 0.25, "adam": 1.0}
SCHEDULES = ("mikolov", "plateau")


@dataclass(frozen=True)
class TrainConfig:
    """Training hyperparameters, saved in ``config.json`` under "training"."""

    batch_size: int = 20
    bptt: int = 35
    truncate: int | None = None
    optimizer: str = "adam"
    lr: float | None = None  # None: DEFAULT_LR[optimizer]
    epochs: int = 30
    min_improvement: float = 1.003
    schedule: str = "mikolov"  # or "plateau" (module docstring)
    halvings: int = 6  # plateau schedule: halve at most this many times
    ema: float = 0.0  # decay of the weight average; 0: no averaging (module docstring)
    clip_norm: float | None = None  # None: DEFAULT_CLIP[optimizer]; 0 turns clipping off
    clip_value: float | None = None
    l2: float = 0.0
    dropout: float = 0.5
    independent: bool = False
    seed: int = 0
    checkpoint_minutes: float = 10.0
    max_minutes: float | None = None
    on_nan: str = "stop"
    eval_batch_size: int = 32

    def resolved(self) -> TrainConfig:
        """The config with optimiser-dependent defaults filled in."""
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), not {self.ema}")
        lr = DEFAULT_LR[self.optimizer] if self.lr is None else self.lr
        clip = DEFAULT_CLIP[self.optimizer] if self.clip_norm is None else self.clip_norm
        return replace(self, lr=lr, clip_norm=clip)


@dataclass(frozen=True)
class VocabConfig:
    vocab_size: int | None = None
    min_count: int = 1
    lowercase: bool = False


@dataclass
class Progress:
    """Everything that changes during training, checkpointed for ``--resume``."""

    epoch: int = 0  # epochs completed
    window: int = 0  # next window within the current epoch
    lr: float = 0.0
    halving: bool = False  # mikolov: halving after every epoch has started
    halvings: int = 0  # how many times the rate has been halved
    updates: int = 0  # optimiser updates so far
    best_ppl: float | None = None
    done: bool = False
    epoch_loss: float = 0.0  # running sum of -ln p over the current epoch
    epoch_tokens: int = 0
    epoch_seconds: float = 0.0
    seconds: float = 0.0  # total training time so far
    skipped_batches: int = 0
    history: list = field(default_factory=list)  # one record per finished epoch
    train_path: str = ""
    valid_path: str | None = None


class Interrupted(LMError):
    """Training was stopped by SIGINT/SIGTERM after saving a checkpoint."""


def unigram_log_probs(stream: Array, n_vocab: int) -> Array:
    """ln of add-0.1 smoothed unigram frequencies of the predicted tokens, (n_vocab,).

    The output bias c starts here, so that the untrained model already predicts the unigram
    distribution and training spends its first updates on context, not on word frequencies.
    """
    counts = np.bincount(stream[1:], minlength=n_vocab) + 0.1
    return np.log(counts / counts.sum())


# ----------------------------------------------------------------------------- evaluation


def evaluate(net: Network, stream: Array, independent: bool, B: int = 32, T: int = 128):
    """Total natural-log probability of a stream and the number of predicted tokens.

    Every word and every ``</s>`` is predicted (SRILM's ``ppl`` counts); the opening ``</s>``
    is input only. The stream is cut into B columns at sentence starts, each starting from a
    zero state with ``</s>`` as input. With ``independent`` the state is also reset before
    every sentence, which makes the result equal to scoring each sentence alone (``lm
    perplexity``); otherwise the state is carried from one sentence to the next in a column.
    """
    columns, mask = sentence_columns(stream, B)
    total, S = 0.0, net.zero_state(columns.shape[1])
    for i, x, y in windows(columns, T):
        keep = (x != EOS)[..., None].astype(net.dtype) if independent else None
        lp, states = net.target_logprobs(x, y, S, keep)
        total += float(lp[mask[i * T : i * T + len(x)]].sum())
        S = states[-1]
    return total, int(mask.sum())


# ----------------------------------------------------------------------------- the loop


class Trainer:
    """Owns one training run writing into ``out`` (a model directory)."""

    def __init__(
        self,
        out: str,
        net: Network,
        vocab: Vocab,
        tc: TrainConfig,
        vc: VocabConfig,
        rng: np.random.Generator,
        progress: Progress,
        opt,
        show_progress: bool = True,
    ):
        self.out, self.net, self.vocab, self.tc, self.vc = out, net, vocab, tc, vc
        self.rng, self.state, self.opt = rng, progress, opt
        self.show_progress = show_progress
        self.best_params = {k: v.copy() for k, v in net.params.items()}
        # the weight average theta_bar (module docstring), None without --ema
        self.ema: dict[str, Array] | None = None
        if tc.ema:
            self.ema = {k: v.copy() for k, v in net.params.items()}
            self._diff = {k: np.empty_like(v) for k, v in net.params.items()}  # scratch
        self.carry: Array | None = None  # state carried between windows
        self._stop_signal: int | None = None
        self._last_checkpoint = time.monotonic()
        self._stream: Array | None = None  # the encoded training file, when already read

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
        show_progress=True,
    ) -> Trainer:
        tc = tc.resolved()
        vocab = Vocab.build(read_lines(train_path), vc.vocab_size, vc.min_count, vc.lowercase)
        if vocab.size <= 3:
            raise DataError(f"{train_path}: holds no words (empty or whitespace only)")
        stream = encode_file(train_path, vocab)
        counts = np.bincount(stream[1:], minlength=vocab.size)  # the predicted tokens
        mc = ModelConfig.from_counts(vocab.size, counts, **mc_args)  # class boundaries
        require_trainable(activations.get(mc.activation, mc.alpha))
        rng = np.random.default_rng(tc.seed)
        net = Network.create(mc, rng, counts=counts)  # output bias: log unigram frequencies
        state = Progress(
            lr=tc.lr,
            train_path=os.path.abspath(train_path),
            valid_path=os.path.abspath(valid_path) if valid_path else None,
        )
        trainer = cls(
            out,
            net,
            vocab,
            tc,
            vc,
            rng,
            state,
            optim.make(tc.optimizer, tc.lr, tc.l2),
            show_progress,
        )
        trainer._stream = stream
        return trainer

    @classmethod
    def resume(cls, out, show_progress=True) -> Trainer:
        net, vocab, config = checkpoint.load_model(out)
        path = os.path.join(out, "resume.npz")
        arrays = checkpoint.load_arrays(path)
        best = net.params
        current = {k[6:]: v for k, v in arrays.items() if k.startswith("param.")}
        checkpoint.validate_params(current, net.config, path, prefix="param.")
        try:
            meta = checkpoint.unpack_json(arrays.pop("meta"))
            tc = TrainConfig(**meta["train_config"])
            vc = VocabConfig(**meta["vocab_config"])
            state = Progress(**meta["progress"])
            opt = optim.make(tc.optimizer, state.lr, tc.l2)
            opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")})
            rng = np.random.default_rng()
            rng.bit_generator.state = meta["rng"]
        except (KeyError, TypeError, ValueError) as e:
            raise LMError(f"{path}: not a valid training checkpoint ({e})") from None
        net = Network.build(net.config, current)
        _validate_optimizer(opt, net.config, path)
        trainer = cls(out, net, vocab, tc, vc, rng, state, opt, show_progress)
        trainer.best_params = {k: v.copy() for k, v in best.items()}
        if trainer.ema is not None:
            average = {k[4:]: v for k, v in arrays.items() if k.startswith("ema.")}
            checkpoint.validate_params(average, net.config, path, prefix="ema.")
            trainer.ema = average
        trainer.carry = arrays.get("carry")
        return trainer

    # --- checkpoints

    def save_resume(self) -> None:
        """Write resume.npz: current weights, optimiser, progress, carried state, rng."""
        arrays = {f"param.{k}": v for k, v in self.net.params.items()}
        arrays.update({f"opt.{k}": v for k, v in self.opt.state_dict().items()})
        if self.ema is not None:
            arrays.update({f"ema.{k}": v for k, v in self.ema.items()})
        if self.carry is not None:
            arrays["carry"] = self.carry
        meta = {
            "train_config": asdict(self.tc),
            "vocab_config": asdict(self.vc),
            "progress": asdict(self.state),
            "rng": self.rng.bit_generator.state,
        }
        arrays["meta"] = checkpoint.pack_json(meta)
        self._write(lambda: checkpoint.save_arrays(os.path.join(self.out, "resume.npz"), arrays))
        self._last_checkpoint = time.monotonic()

    def save_best(self) -> None:
        net = Network.build(self.net.config, self.best_params)
        training = {
            "config": asdict(self.tc),
            "vocab": asdict(self.vc),
            "best_valid_ppl": self.state.best_ppl,
            "epochs": self.state.epoch,
        }
        self._write(lambda: checkpoint.save_model(self.out, net, self.vocab, training))

    def _write(self, fn) -> None:
        try:
            fn()
        except OSError as e:
            raise LMError(
                f"{self.out}: cannot save ({e.strerror or e}); the previous checkpoint is intact"
            ) from None

    # --- signals

    def _on_signal(self, signum, frame) -> None:
        self._stop_signal = signum

    def _install_signals(self):
        old = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                old[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not in the main thread: leave signals alone
                pass
        return old

    # --- the run

    def run(self, log=print) -> dict:
        tc, train_path, valid_path = self.tc, self.state.train_path, self.state.valid_path
        stream = self._stream if self._stream is not None else encode_file(train_path, self.vocab)
        columns = batchify(stream, tc.batch_size)
        if columns.shape[0] < 2:
            raise DataError(
                f"{train_path}: too short for --batch-size {tc.batch_size} "
                f"(needs at least {2 * tc.batch_size} tokens); use a smaller --batch-size"
            )
        valid = encode_file(valid_path, self.vocab) if valid_path else None
        os.makedirs(self.out, exist_ok=True)
        checkpoint.remove_temp_files(self.out)  # left by a run killed mid-save (kill -9)
        if not os.path.exists(os.path.join(self.out, "weights.npz")):
            self.save_best()
        old = self._install_signals()
        try:
            while not self.state.done and self.state.epoch < tc.epochs:
                self._epoch(columns, valid, log)
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return self.summary(columns.size)

    def _epoch(self, columns: Array, valid: Array | None, log) -> None:
        tc, st, net = self.tc, self.state, self.net
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
        for i, x, y in windows(columns, T, start=st.window):
            if self._time_is_up(t0):
                break
            self._step(x, y, i)
            st.window = i + 1
            bar.update(x.size)
            bar.set_postfix(
                ppl=f"{math.exp(st.epoch_loss / max(st.epoch_tokens, 1)):.1f}", refresh=False
            )
            if self._stop_signal is not None:
                self._pause(t0, bar)
            if time.monotonic() - self._last_checkpoint > 60 * tc.checkpoint_minutes:
                self._account(t0)
                t0 = time.perf_counter()
                self.save_resume()
        bar.close()
        self._account(t0)
        self._end_epoch(valid, log)

    def _time_is_up(self, t0: float) -> bool:
        limit = self.tc.max_minutes
        return limit is not None and self.state.seconds + time.perf_counter() - t0 > 60 * limit

    def _account(self, t0: float) -> None:
        dt = time.perf_counter() - t0
        self.state.seconds += dt
        self.state.epoch_seconds += dt

    def _pause(self, t0: float, bar) -> None:
        bar.close()
        self._account(t0)
        self.save_resume()
        name = signal.Signals(self._stop_signal).name
        raise Interrupted(
            f"{name} received: checkpoint saved in {self.out} (epoch {self.state.epoch + 1}, "
            f"window {self.state.window}); continue with: lm train --resume {self.out}"
        )

    def _step(self, x: Array, y: Array, i: int) -> None:
        tc, st, net = self.tc, self.state, self.net
        keep = (x != EOS)[..., None].astype(net.dtype) if tc.independent else None
        loss, grads, s_last = net.loss_and_grads(
            x, y, self.carry, tc.truncate, keep, tc.dropout, self.rng
        )
        if not optim.guarded_update(net.params, grads, self.opt, loss, tc.clip_value, tc.clip_norm):
            if tc.on_nan == "skip":
                st.skipped_batches += 1
                self.carry = net.zero_state(tc.batch_size)
                return
            raise TrainingError(
                f"non-finite loss or gradient at epoch {st.epoch + 1}, step {i + 1}; the last "
                f"good checkpoint in {self.out} is kept; try a smaller --lr or --clip-norm "
                "(or --on-nan skip)"
            )
        st.updates += 1
        if self.ema is not None:
            self._average()
        self.carry = s_last
        st.epoch_loss += loss
        st.epoch_tokens += x.size

    def _average(self) -> None:
        """theta_bar <- theta_bar + (1 - d_n) (theta - theta_bar), in place."""
        n = self.state.updates - 1
        rate = 1.0 - min(self.tc.ema, (1 + n) / (10 + n))
        for k, theta in self.net.params.items():
            bar, diff = self.ema[k], self._diff[k]
            np.subtract(theta, bar, out=diff)
            diff *= rate
            bar += diff

    def _weights(self) -> dict[str, Array]:
        """The weights validated and kept: the average with --ema, else the current ones."""
        return self.net.params if self.ema is None else self.ema

    def _end_epoch(self, valid: Array | None, log) -> None:
        tc, st, net = self.tc, self.state, self.net
        train_ppl = math.exp(st.epoch_loss / max(st.epoch_tokens, 1))
        record = {
            "epoch": st.epoch + 1,
            "train_ppl": train_ppl,
            "lr": st.lr,
            "tokens": st.epoch_tokens,
            "tokens_per_second": st.epoch_tokens / max(st.epoch_seconds, 1e-9),
        }
        t0 = time.perf_counter()
        if valid is not None:
            validated = Network.build(net.config, self._weights())
            logp, n = evaluate(validated, valid, tc.independent, tc.eval_batch_size)
            valid_ppl = math.exp(-logp / n)
            record.update(valid_ppl=valid_ppl, **self._schedule(valid_ppl))
        else:
            self.best_params = {k: v.copy() for k, v in self._weights().items()}
            record.update(valid_ppl=None, accepted=True)
        st.seconds += time.perf_counter() - t0
        record["seconds"] = st.seconds
        st.epoch += 1
        st.window = 0
        if self._time_is_up(time.perf_counter()):
            st.done = True
        st.history.append(record)
        self.save_best()
        self._append_log(record)
        self.save_resume()
        self._plot()
        log(_describe(record))

    def _schedule(self, valid_ppl: float) -> dict:
        """Accept or roll back the epoch, then halve the rate or stop (module docstring)."""
        tc, st, net = self.tc, self.state, self.net
        previous = st.best_ppl
        accepted = previous is None or valid_ppl < previous
        if accepted:
            self.best_params = {k: v.copy() for k, v in self._weights().items()}
            st.best_ppl = valid_ppl
        else:  # roll back: this epoch's weights (and their average) are discarded
            for k, v in self.best_params.items():
                net.params[k][...] = v
                if self.ema is not None:
                    self.ema[k][...] = v
        plateau = previous is not None and previous / valid_ppl < tc.min_improvement
        if tc.schedule == "plateau":
            halve = plateau and st.halvings < tc.halvings
            st.done = st.done or (plateau and not halve)
        else:
            st.done = st.done or (plateau and st.halving)
            st.halving = st.halving or plateau
            halve = st.halving and not st.done
        if halve:
            st.lr /= 2
            st.halvings += 1
            self.opt.lr = st.lr
        return {"accepted": accepted, "rolled_back": not accepted, "next_lr": st.lr}

    def _append_log(self, record: dict) -> None:
        path = os.path.join(self.out, "log.jsonl")
        lines = [json.dumps(r) for r in self.state.history]
        self._write(lambda: _write_text(path, "\n".join(lines) + "\n"))

    def _plot(self) -> None:
        from lm import plots

        h = self.state.history
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
        st = self.state
        tokens = sum(r["tokens"] for r in st.history)
        return {
            "valid_ppl": st.best_ppl,
            "train_tokens": int(train_tokens),
            "epochs": st.epoch,
            "seconds": round(st.seconds, 3),
            "tokens_per_second": tokens / max(st.seconds, 1e-9),
            "skipped_batches": st.skipped_batches,
            "out": self.out,
        }


def _validate_optimizer(opt, mc: ModelConfig, path: str) -> None:
    """Adam's moments, once it has taken a step, have the parameters' shapes; v >= 0."""
    if not isinstance(opt, optim.Adam) or opt.t == 0:
        return
    checkpoint.validate_params(opt.m, mc, path, prefix="opt.m.")
    checkpoint.validate_params(opt.v, mc, path, prefix="opt.v.")
    for k, v in opt.v.items():
        if (v < 0).any():
            raise LMError(f"{path}: opt.v.{k} holds negative values (a second moment)")


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
