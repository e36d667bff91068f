"""What a training run writes into its model directory, and what a failure leaves there.

``resume.npz`` (``checkpoint.Resume``: everything a run needs to go on bit for bit) after every
epoch, every ``checkpoint_minutes`` and on a signal; the model (``config.json``,
``weights.npz``, ``tokenizer.json``: the best weights), ``log.jsonl`` and ``training.png``
after every epoch. Every file is written atomically, so a failed write (a full disk) leaves the
previous checkpoint intact; non-finite weights are never saved.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict

import numpy as np

from lm import checkpoint, trainlog
from lm.errors import LMError, TrainingError
from lm.model import Network

Array = np.ndarray


class Checkpoints:
    """The checkpoints and files of ``lm.training.Trainer`` (a mixin).

    Reads ``out``, ``net``, ``opt``, ``average``, ``best_params``, ``carry``, ``tc``, ``vc``,
    ``vocab``, ``progress`` and ``rng``; ``save_resume`` sets ``_last_checkpoint``.
    """

    def save_resume(self) -> None:
        """Write resume.npz (``checkpoint.Resume``): current weights, optimiser, average,
        progress, carried state, random generator. The first one writes tokenizer.json too."""
        st = self.progress
        if not all_finite(self.net.params) or (
            self.average is not None and not all_finite(self.average.params)
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
            "best_valid_ppl": trainlog.finite_or_none(self.progress.best_ppl),
            "epochs": self.progress.epoch,
        }
        self._write(lambda: checkpoint.save_model(self.out, net, self.vocab, training))

    def _append_log(self) -> None:
        path = os.path.join(self.out, "log.jsonl")
        self._write(lambda: trainlog.write_log(path, self.progress.history))

    def _plot(self) -> None:
        path = os.path.join(self.out, "training.png")
        self._write(lambda: trainlog.plot(path, self.progress.history))

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


def all_finite(params: dict[str, Array]) -> bool:
    """Whether every weight in ``params`` ({name: array}) is finite."""
    return all(np.isfinite(a).all() for a in params.values())
