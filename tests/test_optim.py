"""Gradient clipping (value and global norm) and the optimisers' basic updates."""

from __future__ import annotations

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
