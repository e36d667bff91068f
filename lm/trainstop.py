"""Stopping a training run: SIGINT/SIGTERM and the time budget.

The first SIGINT or SIGTERM is noted and answered between two windows (or two validation
windows): a checkpoint, then ``Interrupted``; a second one raises KeyboardInterrupt at once,
saving nothing more. A run is over when the schedule ends it, at ``--epochs``, or when the time
trained (``Progress.seconds``, which a resumed run goes on from) reaches ``--max-minutes``.
"""

from __future__ import annotations

import signal
import time

from lm.errors import LMError


class Interrupted(LMError):
    """Training was stopped by SIGINT/SIGTERM after saving a checkpoint."""


class Stopping:
    """Signals and the time budget of ``lm.training.Trainer`` (a mixin).

    Reads ``tc`` (schedule, epochs, max_minutes), ``progress`` and ``out``; ``_stop_signal``
    (set to None by the Trainer) holds the first signal received; ``_pause`` saves with the
    Trainer's ``save_resume``.
    """

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

    # --- the time budget and the end of the run

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

    def _time_is_up(self, t0: float) -> bool:
        limit = self.tc.max_minutes
        return limit is not None and self.progress.seconds + time.perf_counter() - t0 > 60 * limit

    def _account(self, t0: float) -> None:
        dt = time.perf_counter() - t0
        self.progress.seconds += dt
        self.progress.epoch_seconds += dt
