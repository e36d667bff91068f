"""The epoch loop of a training run: the windows of an epoch and one update from each.

An epoch walks the training columns (B, see ``lm.data.batchify``) in windows of T steps, from
``progress.window`` on (a resumed run goes on where its checkpoint was). Each window is one
update: the loss and gradients from the carried state (``lm.model``), the non-finite guard,
clipping and the optimiser (``lm.optim.guarded_update``), then the weight average. Between
windows the loop answers a signal (``lm.trainstop``), stops when the time budget is used up,
and writes ``resume.npz`` every ``checkpoint_minutes``.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
from tqdm.auto import tqdm

from lm import optim
from lm.data import n_windows, windows
from lm.errors import ModelFileError, TrainingError
from lm.metrics import perplexity
from lm.tokenizer import EOS

Array = np.ndarray

# A window whose mean cross-entropy exceeds ln(float max) has a perplexity that overflows: as
# useless as a NaN, and treated as one (it happens when training diverges, e.g. --lr 1e6).
MAX_MEAN_LOSS = math.log(sys.float_info.max)


class EpochLoop:
    """The epoch loop and the update step of ``lm.training.Trainer`` (a mixin).

    Reads ``tc``, ``net``, ``opt``, ``average``, ``rng``; updates ``progress`` (window,
    updates, skipped_batches, the epoch's loss, tokens and seconds) and ``carry``. Uses the
    Trainer's ``_time_is_up``, ``_account`` and ``_pause`` (``lm.trainstop``),
    ``save_resume`` and ``kept_note`` (``lm.trainsave``) and ``_end_epoch``.
    """

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
