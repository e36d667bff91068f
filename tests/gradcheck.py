"""A reusable float64 central-difference gradient checker.

The function under test maps a dict of named float64 arrays to a scalar. To check a function
with an array output y = f(params), differentiate the scalar sum(y * G) for a random upstream
gradient G (``with_upstream``): the analytical side then feeds G into the backward pass.

    loss = with_upstream(lambda p: forward(p), G)
    check_gradients(loss, params, {"U": dU, "W": dW}, context="tanh, dense, K=3")

A failure names the parameter, the worst element and the ``context`` (activation, input
kind, truncation, ...), so a parametrised test says exactly which combination broke.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

Array = np.ndarray
Params = Mapping[str, Array]


def with_upstream(f: Callable[[Params], Array], G: Array) -> Callable[[Params], float]:
    """The scalar function p -> sum(f(p) * G), whose gradient is the backward pass of f fed G."""
    return lambda params: float(np.sum(f(params) * G))


def numerical_gradient(
    f: Callable[[Params], float], params: Params, name: str, eps: float = 1e-6
) -> Array:
    """Central differences (f(p + eps e_i) - f(p - eps e_i)) / (2 eps) for every element i of
    params[name]. The array is perturbed in place and restored; shape of params[name]."""
    x = params[name]
    if x.dtype != np.float64:
        raise TypeError(f"gradient check of {name!r} needs float64, got {x.dtype}")
    grad = np.empty_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views: writes reach x
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f(params)
        flat[i] = old - eps
        down = f(params)
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def relative_error(analytic: Array, numeric: Array, floor: float = 1e-8) -> Array:
    """|a - n| / max(|a| + |n|, floor), element-wise. Where both are below ``floor`` this is
    an absolute error scaled by 1 / floor."""
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), floor)


def rounding_noise(value: float, eps: float) -> float:
    """About the absolute error of a central difference of a function near ``value``: its
    rounding error (a few ulps of f) divided by the step 2 eps."""
    return 10 * np.finfo(np.float64).eps * max(abs(value), 1.0) / eps


def check_gradients(
    f: Callable[[Params], float],
    params: Params,
    analytic: Mapping[str, Array],
    context: str = "",
    tol: float = 1e-5,
    eps: float = 1e-6,
) -> None:
    """Assert every analytic gradient matches central differences of f to relative error tol.

    f : scalar function of the whole params dict (all float64).
    analytic : {name: gradient of f with respect to params[name]} (same shapes); only the
        names given are checked.
    context : appended to the failure message, e.g. "activation=relu, input=dense, K=1".
    tol : largest relative error |a - n| / (|a| + |n|) allowed. Elements with |a| + |n|
        below rounding_noise / tol are held to an absolute error of rounding_noise instead:
        their relative error would measure only the noise of the central difference.
    """
    floor = max(1e-8, rounding_noise(f(params), eps) / tol)
    for name, grad in analytic.items():
        if grad.shape != params[name].shape:
            raise AssertionError(
                f"gradient of {name!r} has shape {grad.shape}, parameter has "
                f"{params[name].shape} [{context}]"
            )
        numeric = numerical_gradient(f, params, name, eps)
        err = relative_error(grad, numeric, floor)
        worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else ()
        if err.size and err[worst] > tol:
            raise AssertionError(
                f"gradient of {name!r} wrong at {tuple(int(i) for i in worst)}: analytic "
                f"{grad[worst]:.8g}, numeric {numeric[worst]:.8g}, relative error "
                f"{err[worst]:.2e} > {tol:g} [{context}]"
            )
