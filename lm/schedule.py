"""The learning-rate schedule and the rollback rule: one pure function of the epoch's result.

After each epoch the validation perplexity decides, for SGD and Adam alike:

- an epoch that made it worse (or whose perplexity is not finite) is *rolled back*: its
  weights are discarded and training goes on from the best weights so far;
- an epoch that improved it by less than a factor ``min_improvement`` (a worse epoch
  included) is a *plateau*.

Schedules:

- ``mikolov`` (rnnlm's, the default): the first plateau starts halving the learning rate after
  every epoch; the next plateau ends training. Quick: it ends a few epochs after the first
  plateau.
- ``plateau``: the learning rate is halved at each plateau only, and training ends at the
  plateau after ``halvings`` halvings. Every rate gets as many epochs as it keeps improving,
  so it spends more epochs (on the synthetic corpus it ended level with ``mikolov``).

Without validation every epoch is accepted and the rate stays where it is.

    >>> s = Schedule("mikolov", min_improvement=1.01)
    >>> d = decide(s, RateState(lr=1.0), 100.0)  # the first epoch is always accepted
    >>> d.accepted, d.state.lr, d.state.best_ppl
    (True, 1.0, 100.0)
    >>> d = decide(s, d.state, 99.5)  # better by less than 1%: a plateau, halving starts
    >>> d.plateau, d.state.lr, d.state.done
    (True, 0.5, False)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

SCHEDULES = ("mikolov", "plateau")


@dataclass(frozen=True)
class Schedule:
    """How the rate reacts to validation (``TrainConfig``'s schedule fields)."""

    kind: str = "mikolov"  # one of SCHEDULES
    min_improvement: float = 1.003  # an epoch improving by less than this factor: a plateau
    halvings: int = 6  # plateau schedule: halve at most this many times


@dataclass(frozen=True)
class RateState:
    """What the schedule carries from one epoch to the next."""

    lr: float
    best_ppl: float | None = None  # best validation perplexity so far (None: no epoch yet)
    halving: bool = False  # mikolov: halving after every epoch has started
    halvings: int = 0  # how many times the rate has been halved
    done: bool = False  # the schedule has ended training


@dataclass(frozen=True)
class Decision:
    accepted: bool  # keep this epoch's weights as the best; False: roll them back
    plateau: bool
    state: RateState  # the state for the next epoch (its lr is the next rate)


def decide(schedule: Schedule, state: RateState, valid_ppl: float | None) -> Decision:
    """Judge one epoch by its validation perplexity (None: no validation) and say what follows.

    >>> decide(Schedule(), RateState(lr=0.1, best_ppl=50.0), 60.0).accepted  # worse: roll back
    False
    >>> decide(Schedule(), RateState(lr=0.1), None).state.lr  # no validation: rate unchanged
    0.1
    """
    if valid_ppl is None:
        return Decision(True, False, state)
    previous = state.best_ppl
    finite = math.isfinite(valid_ppl)
    accepted = finite and (previous is None or valid_ppl < previous)
    plateau = previous is not None and (
        not finite or previous / valid_ppl < schedule.min_improvement
    )
    halving, halvings, done = state.halving, state.halvings, state.done
    if schedule.kind == "plateau":
        halve = plateau and halvings < schedule.halvings
        done = done or (plateau and not halve)
    elif schedule.kind == "mikolov":
        done = done or (plateau and halving)
        halving = halving or plateau
        halve = halving and not done
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule.kind!r}")
    lr = state.lr / 2 if halve else state.lr
    best = valid_ppl if accepted else previous
    new = replace(
        state, lr=lr, best_ppl=best, halving=halving, halvings=halvings + int(halve), done=done
    )
    return Decision(accepted, plateau, new)
