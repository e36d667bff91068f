"""Stopping a training run (``lm.trainstop``): the first signal is noted and answered with a
checkpoint and ``Interrupted``, a second one stops at once; the reasons a run is over. With
real training and real signals: test_training.py, test_kill.py."""

import signal
import time

import pytest

from lm.trainconfig import Progress, TrainConfig
from lm.trainstop import Interrupted, Stopping


class Run(Stopping):
    """What ``Stopping`` reads of a Trainer, and a save_resume that counts."""

    def __init__(self, **tc):
        self.tc, self.progress, self.out = TrainConfig(**tc), Progress(lr=1.0), "m"
        self._stop_signal = None
        self.saved = 0

    def save_resume(self):
        self.saved += 1


def test_the_first_signal_is_noted_and_a_second_stops_at_once():
    run = Run()
    assert not run._stopping()
    run._on_signal(signal.SIGTERM, None)
    assert run._stopping() and run._stop_signal == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
        run._on_signal(signal.SIGINT, None)


def test_pause_saves_then_says_how_to_go_on():
    run = Run()
    run.progress.epoch, run.progress.window = 1, 7
    run._on_signal(signal.SIGINT, None)
    with pytest.raises(Interrupted) as e:
        run._pause()
    assert run.saved == 1
    assert str(e.value) == (
        "SIGINT received: checkpoint saved in m (epoch 2, window 7); "
        "continue with: lm train --resume m"
    )


def test_install_signals_returns_the_handlers_it_replaced():
    run = Run()
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    old = run._install_signals()
    try:
        assert old == before
        assert signal.getsignal(signal.SIGTERM) == run._on_signal
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def test_why_a_run_is_over():
    run = Run(epochs=2, max_minutes=1.0)
    assert run._finished() is None
    run.progress.seconds = 61.0
    assert run._finished().startswith("--max-minutes 1 used up (1.02 min trained)")
    run.progress.epoch = 2
    assert run._finished() == "--epochs 2 reached; give a larger --epochs to train on"
    run.progress.done = True
    assert run._finished() == "the plateau schedule ended training after epoch 2"


def test_the_time_budget_counts_what_was_trained_before():
    run = Run(max_minutes=0.5)
    run.progress.seconds = 29.0
    assert not run._time_is_up(time.perf_counter())
    assert run._time_is_up(time.perf_counter() - 2.0)  # 2 s into this stretch: 31 s in all
    assert not Run()._time_is_up(0.0)  # no --max-minutes: never


def test_account_adds_the_stretch_to_the_run_and_the_epoch():
    run = Run()
    run.progress.seconds, run.progress.epoch_seconds = 10.0, 1.0
    run._account(time.perf_counter() - 2.0)
    assert 12.0 <= run.progress.seconds < 13.0
    assert run.progress.seconds - run.progress.epoch_seconds == pytest.approx(9.0)
