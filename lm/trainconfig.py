"""What a training run is set up with and what it has done so far.

``TrainConfig`` and ``VocabConfig`` are saved in ``config.json`` (under "training") and in
``resume.npz``; ``Progress`` only in ``resume.npz``. Both configs check their fields when
they are made (``ValueError`` naming the field); ``Progress.validate`` does the same for a
progress read back from a file. Checking in one place lets ``lm.checkpoint`` refuse a
tampered checkpoint with the field's name instead of training on nonsense.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import ClassVar

from lm.checks import is_int, is_real
from lm.schedule import SCHEDULES, RateState, Schedule

DEFAULT_LR = {"sgd": 1.0, "adam": 3e-3}
DEFAULT_CLIP = {"sgd": 0.25, "adam": 1.0}
OPTIMIZERS = ("sgd", "adam")
ON_NAN = ("stop", "skip")


def _is_finite(x) -> bool:
    return is_real(x) and math.isfinite(x)


def _int(lo: int):
    return lambda x: is_int(x) and x >= lo, f"an integer >= {lo}"


def _real(lo: float, hi: float = math.inf, lo_open=False, hi_open=True):
    def ok(x):
        return (
            _is_finite(x) and (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)
        )

    what = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    if hi != math.inf:
        what += f" and {'<' if hi_open else '<='} {hi:g}"
    return ok, what


def _optional(check):
    ok, what = check
    return lambda x: x is None or ok(x), f"{what} (or null)"


def _one_of(names):
    return lambda x: x in names, "one of " + ", ".join(names)


_BOOL = (lambda x: isinstance(x, bool), "true or false")
_FINITE = (_is_finite, "a finite number")


class FieldError(ValueError):
    """A config or progress field out of range; ``field`` is its name."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _check(obj, rules: dict) -> None:
    """Raise FieldError("<field> must be <what>, got <value>") for the first field of ``obj``
    that breaks its rule."""
    for name, (ok, what) in rules.items():
        value = getattr(obj, name)
        if not ok(value):
            raise FieldError(name, f"{name} must be {what}, got {value!r}")


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
    schedule: str = "plateau"  # or "mikolov" (lm.schedule)
    halvings: int = 6  # plateau schedule: halve at most this many times
    ema: float = 0.999  # decay of the weight average; 0: none (lm.optim.WeightAverage)
    clip_norm: float | None = None  # None: DEFAULT_CLIP[optimizer]; 0 turns clipping off
    clip_value: float | None = None
    l2: float = 0.0
    dropout: float | None = None  # None: default_dropout(training tokens)
    independent: bool = True  # reset the state at sentence starts (as scoring does)
    seed: int = 0
    checkpoint_minutes: float = 10.0
    max_minutes: float | None = None
    on_nan: str = "stop"
    eval_batch_size: int = 32

    _RULES: ClassVar[dict] = {
        "batch_size": _int(1),
        "bptt": _int(1),
        "truncate": _optional(_int(1)),
        "optimizer": _one_of(OPTIMIZERS),
        "lr": _optional(_real(0, lo_open=True)),
        "epochs": _int(1),
        "min_improvement": _real(1),
        "schedule": _one_of(SCHEDULES),
        "halvings": _int(0),
        "ema": _real(0, 1),
        "clip_norm": _optional(_real(0)),
        "clip_value": _optional(_real(0, lo_open=True)),
        "l2": _real(0),
        "dropout": _optional(_real(0, 1)),
        "independent": _BOOL,
        "seed": _int(0),
        "checkpoint_minutes": _real(0, lo_open=True),
        "max_minutes": _optional(_real(0, lo_open=True)),
        "on_nan": _one_of(ON_NAN),
        "eval_batch_size": _int(1),
    }

    def __post_init__(self):
        _check(self, self._RULES)

    def resolved(self, n_tokens: int | None = None) -> TrainConfig:
        """The config with the optimiser-dependent defaults filled in, and the dropout from
        the size of the training text (``default_dropout``) once ``n_tokens`` is known."""
        lr = DEFAULT_LR[self.optimizer] if self.lr is None else self.lr
        clip = DEFAULT_CLIP[self.optimizer] if self.clip_norm is None else self.clip_norm
        dropout = self.dropout
        if dropout is None and n_tokens is not None:
            dropout = default_dropout(n_tokens)
        return replace(self, lr=lr, clip_norm=clip, dropout=dropout)

    def schedule_rule(self) -> Schedule:
        return Schedule(self.schedule, self.min_improvement, self.halvings)


# (training tokens below, dropout): the default rule, chosen on the corpora of the README's
# Quality section (66k to 900k tokens): small text needs a strong regulariser, large text
# little (on the Penn Treebank small setting 0.7 beat 0.5 by 2-5% for every cell and input
# tried; on the 900k-token synthetic corpus 0.3 was best)
DROPOUT_BY_SIZE = ((150_000, 0.7), (600_000, 0.5), (3_000_000, 0.3))
DROPOUT_LARGE = 0.1


def default_dropout(n_tokens: int) -> float:
    """The dropout ``lm train`` uses when --dropout is not given, from the number of
    predicted training tokens (words + </s>): 0.7 below 150k, 0.5 below 600k, 0.3 below 3M,
    0.1 from there on."""
    for limit, p in DROPOUT_BY_SIZE:
        if n_tokens < limit:
            return p
    return DROPOUT_LARGE


# the fields of TrainConfig that may change when a run is resumed (``Trainer.resume``): they
# say how long and how to watch it, not what is computed (--lr excepted: a new rate from the
# next update on)
RESUMABLE = ("epochs", "max_minutes", "checkpoint_minutes", "on_nan", "lr")


@dataclass(frozen=True)
class VocabConfig:
    """``min_count`` None: ``default_min_count`` of the training text."""

    vocab_size: int | None = None
    min_count: int | None = None
    lowercase: bool = False

    _RULES: ClassVar[dict] = {
        "vocab_size": _optional(_int(4)),
        "min_count": _optional(_int(1)),
        "lowercase": _BOOL,
    }

    def __post_init__(self):
        _check(self, self._RULES)


def default_min_count(counts) -> int:
    """The vocabulary rule when --min-count is not given: words seen at least twice, so that
    the singletons become ``<unk>`` and ``<unk>`` is trained (an unlimited vocabulary never
    sees ``<unk>``, and every out-of-vocabulary word of the test text then costs whatever the
    untrained ``<unk>`` row says); every word when the text already holds a literal
    ``<unk>`` (Penn Treebank), whose vocabulary was cut that way before. ``counts`` maps
    words to their frequencies in the training text."""
    return 1 if "<unk>" in counts else 2


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
    done: bool = False  # the schedule has ended training
    epoch_loss: float = 0.0  # running sum of -ln p over the current epoch
    epoch_tokens: int = 0
    epoch_seconds: float = 0.0
    seconds: float = 0.0  # total training time so far
    skipped_batches: int = 0
    history: list = field(default_factory=list)  # one record per finished epoch
    train_path: str = ""
    valid_path: str | None = None
    train_digest: dict | None = None  # lm.checkpoint.fingerprint of the training file
    valid_digest: dict | None = None
    changes: dict = field(default_factory=dict)  # options changed on resume, for the log

    _RULES: ClassVar[dict] = {
        "epoch": _int(0),
        "window": _int(0),
        "lr": _real(0, lo_open=True),
        "halving": _BOOL,
        "halvings": _int(0),
        "updates": _int(0),
        "best_ppl": _optional(_real(0, lo_open=True)),
        "done": _BOOL,
        "epoch_loss": _FINITE,
        "epoch_tokens": _int(0),
        "epoch_seconds": _real(0),
        "seconds": _real(0),
        "skipped_batches": _int(0),
        "history": (
            lambda x: isinstance(x, list) and all(isinstance(r, dict) for r in x),
            "a list of records",
        ),
        "train_path": (lambda x: isinstance(x, str) and x != "", "a path"),
        "valid_path": (lambda x: x is None or (isinstance(x, str) and x != ""), "a path or null"),
        "train_digest": (lambda x: x is None or isinstance(x, dict), "a fingerprint or null"),
        "valid_digest": (lambda x: x is None or isinstance(x, dict), "a fingerprint or null"),
        "changes": (lambda x: isinstance(x, dict), "a record of changed options"),
    }

    def validate(self) -> None:
        """Raise ValueError naming the first field with a value no run can have."""
        _check(self, self._RULES)

    def rate_state(self) -> RateState:
        return RateState(self.lr, self.best_ppl, self.halving, self.halvings, self.done)

    def set_rate_state(self, s: RateState) -> None:
        self.lr, self.best_ppl, self.halving = s.lr, s.best_ppl, s.halving
        self.halvings, self.done = s.halvings, s.done


def from_dict(cls, d, complete: bool = False):
    """``cls(**d)`` for TrainConfig, VocabConfig or Progress (as saved by
    ``dataclasses.asdict``), validated: ValueError naming unknown fields, missing ones (with
    ``complete``; else they take their defaults) or the first out-of-range one."""
    if not isinstance(d, dict):
        raise ValueError(f"must be a JSON object, got {type(d).__name__}")  # noqa: TRY004
    names = {f.name for f in fields(cls)}
    if set(d) - names:
        raise ValueError(f"unknown fields {', '.join(sorted(set(d) - names))}")
    if complete and names - set(d):
        raise ValueError(f"missing fields {', '.join(sorted(names - set(d)))}")
    obj = cls(**d)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj
