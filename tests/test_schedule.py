"""The learning-rate schedule and rollback rule, as sequences of validation perplexities."""

import math

import pytest

from lm.schedule import RateState, Schedule, decide


def run_schedule(schedule, valid_ppls, lr=1.0):
    """Feed validation perplexities to ``decide``; one (lr after, accepted, done) each, and
    the last state. Stops when the schedule says done, as the trainer does."""
    state, out = RateState(lr=lr), []
    for ppl in valid_ppls:
        if state.done:
            break
        d = decide(schedule, state, ppl)
        state = d.state
        out.append((state.lr, d.accepted, state.done))
    return out, state


# min_improvement 1.01: 100 -> 99.5 is a plateau (improved, but by less than 1%)
PPLS = [100, 90, 89.5, 85, 84.5, 84.4, 80]


def test_mikolov_schedule_halves_every_epoch_after_first_plateau():
    steps, _ = run_schedule(Schedule("mikolov", min_improvement=1.01), PPLS)
    assert steps == [
        (1.0, True, False),
        (1.0, True, False),
        (0.5, True, False),  # 90 -> 89.5: first plateau, halving starts
        (0.25, True, False),  # improved a lot, but halving goes on every epoch
        (0.25, True, True),  # 85 -> 84.5: the next plateau ends training
    ]


def test_plateau_schedule_halves_only_at_plateaus_and_stops_after_halvings():
    steps, state = run_schedule(Schedule("plateau", min_improvement=1.01, halvings=2), PPLS)
    assert steps == [
        (1.0, True, False),
        (1.0, True, False),
        (0.5, True, False),  # plateau 1
        (0.5, True, False),  # a real improvement keeps the rate
        (0.25, True, False),  # plateau 2
        (0.25, True, True),  # plateau 3, after 2 halvings: stop
    ]
    assert state.halvings == 2


def test_plateau_schedule_with_no_halvings_stops_at_the_first_plateau():
    steps, state = run_schedule(Schedule("plateau", 1.01, halvings=0), [100, 90, 89.9, 80])
    assert steps == [(1.0, True, False), (1.0, True, False), (1.0, True, True)]
    assert state.halvings == 0


def test_a_worse_epoch_is_rolled_back_and_is_a_plateau():
    s = Schedule("plateau", min_improvement=1.003, halvings=3)
    d = decide(s, RateState(lr=1.0, best_ppl=50.0), 60.0)
    assert (d.accepted, d.plateau) == (False, True)
    assert d.state == RateState(lr=0.5, best_ppl=50.0, halvings=1)  # the best stays


def test_worse_epochs_then_better_ones_under_mikolov():
    steps, state = run_schedule(Schedule("mikolov", 1.01), [100, 120, 95, 80, 70])
    assert steps == [
        (1.0, True, False),
        (0.5, False, False),  # worse: rolled back, and a plateau: halving starts
        (0.25, True, False),  # better than 100: kept; halving goes on every epoch
        (0.125, True, False),  # no second plateau yet: training goes on
        (0.0625, True, False),
    ]
    assert state.best_ppl == 70


def test_the_first_epoch_is_accepted_whatever_its_value_and_is_no_plateau():
    d = decide(Schedule("mikolov"), RateState(lr=0.1), 1e6)
    assert (d.accepted, d.plateau, d.state.best_ppl, d.state.lr) == (True, False, 1e6, 0.1)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_perplexity_is_never_accepted(bad):
    first = decide(Schedule("mikolov"), RateState(lr=0.1), bad)
    assert not first.accepted and first.state.best_ppl is None
    later = decide(Schedule("plateau", halvings=3), RateState(lr=0.1, best_ppl=50.0), bad)
    assert (later.accepted, later.plateau) == (False, True)
    assert later.state.best_ppl == 50.0 and later.state.lr == 0.05


def test_without_validation_every_epoch_is_accepted_at_a_constant_rate():
    state = RateState(lr=0.3, halving=True)
    d = decide(Schedule("mikolov"), state, None)
    assert d.accepted and not d.plateau and d.state == state


def test_done_stays_done():
    d = decide(Schedule("plateau"), RateState(lr=1.0, best_ppl=10.0, done=True), 5.0)
    assert d.accepted and d.state.done


def test_decide_is_pure():
    state = RateState(lr=1.0, best_ppl=90.0)
    before = RateState(**vars(state))
    decide(Schedule("mikolov", 1.01), state, 89.5)
    assert state == before  # frozen: the caller's state is untouched


def test_unknown_schedule():
    with pytest.raises(ValueError, match="schedule must be one of"):
        decide(Schedule("cosine"), RateState(lr=1.0, best_ppl=2.0), 1.5)
