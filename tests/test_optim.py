"""Gradient clipping (value and global norm) and the optimisers' basic updates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lm import optim


def grads_of(rng, scale: float) -> dict[str, np.ndarray]:
    return {
        "U": scale * rng.normal(size=(3, 4)),
        "W": scale * rng.normal(size=(4, 4)),
        "b": scale * rng.normal(size=4),
    }


def test_clip_values_bounds_every_element(rng):
    grads = grads_of(rng, 20.0)
    before = {k: g.copy() for k, g in grads.items()}
    optim.clip_values(grads, 10.0)
    for k, g in grads.items():
        assert np.all(np.abs(g) <= 10.0)
        inside = np.abs(before[k]) <= 10.0
        np.testing.assert_array_equal(g[inside], before[k][inside])  # untouched inside
        np.testing.assert_array_equal(g[~inside], 10.0 * np.sign(before[k][~inside]))


def test_clip_values_below_limit_changes_nothing(rng):
    grads = grads_of(rng, 0.1)
    before = {k: g.copy() for k, g in grads.items()}
    optim.clip_values(grads, 10.0)
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_clip_global_norm_scales_to_exactly_max_norm(rng):
    grads = grads_of(rng, 5.0)
    before = {k: g.copy() for k, g in grads.items()}
    norm_before = np.sqrt(sum(np.sum(g**2) for g in before.values()))
    returned = optim.clip_global_norm(grads, 1.5)
    assert returned == pytest.approx(norm_before, rel=1e-12)
    assert optim.global_norm(grads) == pytest.approx(1.5, rel=1e-9)
    for k in grads:  # one common factor: directions are kept
        np.testing.assert_allclose(grads[k], before[k] * (1.5 / norm_before), rtol=1e-9)


def test_clip_global_norm_below_max_is_untouched(rng):
    grads = grads_of(rng, 0.01)
    before = {k: g.copy() for k, g in grads.items()}
    norm = optim.clip_global_norm(grads, 100.0)
    assert norm < 100.0
    for k in grads:
        np.testing.assert_array_equal(grads[k], before[k])


def test_sgd_step():
    params = {"w": np.array([1.0, -2.0])}
    optim.SGD(lr=0.1).update(params, {"w": np.array([10.0, 0.5])})
    np.testing.assert_allclose(params["w"], [0.0, -2.05])


def test_adam_first_step_moves_each_parameter_by_lr():
    """With bias correction, Adam's first update is lr * g / |g| (up to eps)."""
    params = {"w": np.array([1.0, -2.0, 0.5])}
    optim.Adam(lr=0.01).update(params, {"w": np.array([3.0, -0.2, 0.5])})
    np.testing.assert_allclose(params["w"], [0.99, -1.99, 0.49], rtol=1e-6)


def test_make_rejects_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.make("rmsprop", 0.1)


# ----- the update step: non-finite guard, then clip and update -----


def test_finite_norm_is_the_global_norm_of_a_finite_step():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    assert optim.finite_norm(1.5, grads) == pytest.approx(5.0)


@pytest.mark.parametrize(
    "loss, grad, max_loss",
    [
        (float("nan"), 1.0, np.inf),
        (float("inf"), 1.0, np.inf),
        (1.0, float("nan"), np.inf),
        (1.0, float("inf"), np.inf),
        (1.0, 1e200, np.inf),  # finite elements whose squares overflow: the norm is inf
        (800.0, 1.0, 709.0),  # finite, but above the caller's limit
    ],
)
def test_finite_norm_refuses_a_step_that_must_not_be_taken(loss, grad, max_loss):
    grads = {"a": np.array([grad, 1.0]), "b": np.ones(3)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and says so without a RuntimeWarning
        assert optim.finite_norm(loss, grads, max_loss) is None


def test_guarded_update_clips_values_then_the_norm_then_updates(rng):
    params = {k: rng.normal(size=g.shape) for k, g in grads_of(rng, 1.0).items()}
    grads = grads_of(rng, 20.0)
    expected_p = {k: v.copy() for k, v in params.items()}
    expected_g = {k: g.copy() for k, g in grads.items()}
    optim.clip_values(expected_g, 10.0)
    optim.clip_global_norm(expected_g, 2.0)
    optim.SGD(lr=0.1).update(expected_p, expected_g)

    assert optim.guarded_update(params, grads, optim.SGD(lr=0.1), 1.0, 10.0, 2.0)
    for k, p in params.items():
        np.testing.assert_array_equal(p, expected_p[k])


@pytest.mark.parametrize("off", [None, 0, 0.0])
def test_guarded_update_without_clipping_is_the_plain_update(off):
    params = {"w": np.zeros(3)}
    grads = {"w": np.array([30.0, -40.0, 0.0])}
    assert optim.guarded_update(params, grads, optim.SGD(lr=1.0), 1.0, off, off)
    np.testing.assert_array_equal(params["w"], [-30.0, 40.0, 0.0])


def test_guarded_update_updates_only_the_given_gradients():
    params = {"w": np.ones(2), "b": np.ones(2)}
    assert optim.guarded_update(params, {"w": np.ones(2)}, optim.SGD(lr=0.5), 0.0)
    np.testing.assert_array_equal(params["w"], [0.5, 0.5])
    np.testing.assert_array_equal(params["b"], [1.0, 1.0])


@pytest.mark.parametrize(
    "loss, grad, max_loss",
    [(float("nan"), 1.0, np.inf), (1.0, float("inf"), np.inf), (800.0, 1.0, 709.0)],
)
def test_guarded_update_refuses_what_finite_norm_refuses_and_changes_nothing(loss, grad, max_loss):
    params = {"w": np.ones(2)}
    grads = {"w": np.array([grad, 1.0])}
    opt = optim.Adam(lr=0.1)
    assert not optim.guarded_update(params, grads, opt, loss, 0.5, 1.0, max_loss)
    np.testing.assert_array_equal(params["w"], [1.0, 1.0])
    assert opt.t == 0 and grads["w"][1] == 1.0  # no update, no clipping


def test_adam_threads_keep_the_callers_errstate():
    """Large parameters are updated by worker threads; an overflow the caller expects (and
    silences) must not come out of them as a RuntimeWarning."""
    n = optim._PARALLEL_SIZE * 2
    params = {"w": np.zeros(n, dtype=np.float32)}
    grads = {"w": np.full(n, 1e30, dtype=np.float32)}  # g * g overflows float32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="ignore", invalid="ignore"):
            optim.Adam(lr=0.1).update(params, grads)


# ----- the weight average -----


def test_weight_average_follows_its_recurrence(rng):
    d = 0.9
    theta = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    avg = optim.WeightAverage(d, theta)
    expected = {k: v.copy() for k, v in theta.items()}
    for n in range(30):
        for v in theta.values():
            v += rng.normal(size=v.shape)
        avg.update(theta)
        rate = 1 - min(d, (1 + n) / (10 + n))
        for k, v in theta.items():
            expected[k] += rate * (v - expected[k])
    assert avg.n == 30
    for k, v in theta.items():
        np.testing.assert_allclose(avg.params[k], expected[k], rtol=1e-12)
        assert not np.shares_memory(avg.params[k], v)


def test_weight_average_reset_and_state_dict_round_trip(rng):
    theta = {"w": rng.normal(size=4)}
    avg = optim.WeightAverage(0.99, theta)
    theta["w"] += 1.0
    avg.update(theta)
    avg.update(theta)
    state = avg.state_dict()
    assert set(state) == {"n", "w"} and int(state["n"]) == 2
    again = optim.WeightAverage.from_state_dict(0.99, state)
    assert again.n == 2
    np.testing.assert_array_equal(again.params["w"], avg.params["w"])
    theta["w"] += 1.0
    avg.update(theta)
    again.update(theta)
    np.testing.assert_array_equal(again.params["w"], avg.params["w"])  # goes on identically
    avg.reset({"w": np.zeros(4)})
    np.testing.assert_array_equal(avg.params["w"], np.zeros(4))
    assert avg.n == 3  # a rollback keeps the count of updates


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5])
def test_weight_average_decay_must_be_in_0_1(decay):
    with pytest.raises(ValueError, match="decay"):
        optim.WeightAverage(decay, {"w": np.zeros(1)})
