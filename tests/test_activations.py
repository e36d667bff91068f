"""Activations: values, numerical safety, derivatives by finite differences, the step rule."""

from __future__ import annotations

import warnings

import devices
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lm import activations
from lm.errors import TrainingError

TRAINABLE = ("sigmoid", "tanh", "relu", "leaky_relu")


def points(n: int = 401) -> np.ndarray:
    """Sample points in [-6, 6] that keep at least 1e-3 away from the kink at 0."""
    a = np.linspace(-6, 6, n)
    return a[np.abs(a) > 1e-3]


def test_forward_values():
    a = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    np.testing.assert_array_equal(activations.get("step")(a), [0, 0, 0, 1, 1])
    np.testing.assert_allclose(activations.get("sigmoid")(a), 1 / (1 + np.exp(-a)), rtol=1e-14)
    np.testing.assert_allclose(activations.get("tanh")(a), np.tanh(a))
    np.testing.assert_array_equal(activations.get("relu")(a), [0, 0, 0, 0.5, 2])
    np.testing.assert_allclose(activations.get("leaky_relu")(a), [-0.02, -0.005, 0, 0.5, 2])


def test_leaky_relu_slope_defaults_to_001_and_is_settable():
    assert activations.get("leaky_relu").alpha == 0.01
    act = activations.get("leaky_relu", alpha=0.3)
    assert act.alpha == 0.3
    np.testing.assert_allclose(act(np.array([-2.0, 3.0])), [-0.6, 3.0])
    np.testing.assert_allclose(act.derivative(np.array([-2.0, 3.0]), None), [0.3, 1.0])


def test_sigmoid_is_finite_and_silent_at_plus_minus_1000():
    a = np.array([-1000.0, 1000.0])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        s = activations.get("sigmoid")(a)
        d = activations.get("sigmoid").derivative(a, s)
    np.testing.assert_array_equal(s, [0.0, 1.0])
    assert np.all(np.isfinite(d))


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_sigmoid_stays_in_unit_interval_for_any_float(x):
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is harmless
        s = activations.sigmoid(np.array([x]))
    assert 0.0 <= s[0] <= 1.0


def test_float32_stays_float32():
    a = np.linspace(-3, 3, 7, dtype=np.float32)
    for name in activations.NAMES:
        assert activations.get(name)(a).dtype == np.float32, name


@pytest.mark.parametrize("name", TRAINABLE)
def test_derivative_matches_finite_differences(name):
    act = activations.get(name, alpha=0.05)
    a = points()
    eps = 1e-6
    numeric = (act(a + eps) - act(a - eps)) / (2 * eps)
    analytic = act.derivative(a, act(a))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9, err_msg=name)


def test_step_cannot_be_trained():
    step = activations.get("step")
    assert not step.trainable
    with pytest.raises(TrainingError, match="derivative"):
        activations.require_trainable(step)
    for name in TRAINABLE:
        activations.require_trainable(activations.get(name))  # no error


def test_unknown_activation_is_rejected():
    with pytest.raises(ValueError, match="unknown activation"):
        activations.get("swish")


def test_plot_activations_writes_five_pngs(runner, lm_cli, tmp_path):
    out = tmp_path / "figs"
    result = runner.invoke(lm_cli, ["plot", "activations", "--out", str(out)])
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted(f"{name}.png" for name in activations.NAMES)
    for path in out.iterdir():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.stdout.count(".png") == 5


def test_leaky_relu_figure_title_names_its_slope():
    from lm import plots

    fig = plots.activation_figure("leaky_relu")
    assert "0.3" in fig.axes[0].get_title()


@pytest.mark.parametrize("name", activations.NAMES)
def test_activations_on_every_backend(backends, name):
    a = points(41).astype(np.float32)
    act = activations.get(name)

    def both(a):
        s = act(a)
        return {"s": s} if act.derivative is None else {"s": s, "ds": act.derivative(a, s)}

    got = both(devices.put(backends, a))
    devices.assert_on(backends, got)
    devices.assert_close(got, both(a))
