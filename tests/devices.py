"""Running a test on every array backend: numpy, a strict stand-in for CuPy, and CuPy itself.

``backends`` (the fixture in conftest.py) gives one of these names:
    "numpy"     host arrays, the reference;
    "fakecupy"  numpy arrays dressed as device arrays (``DeviceArray``), always available: a
                numpy ufunc refuses to mix them with host arrays (as CuPy raises TypeError for
                a numpy operand), host numpy functions (``np.concatenate``, ``np.empty_like``,
                ``np.add.reduceat``, ...) refuse them, and ``lm.backend.xp_of`` returns the
                stand-in module for them, so a math function that allocates with host numpy
                or calls a numpy-only idiom on device data fails here, on a machine without a
                GPU, instead of on the GPU;
    "cupy"      CuPy on a CUDA GPU (skipped where CuPy is missing or sees no GPU).

A test computes its reference with numpy, moves the inputs with ``put``, runs the same code,
checks that the results stayed on the device (``assert_on``) and compares them on the host
(``assert_close``, float32: 1e-5).
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from lm import backend, sparse

BACKENDS = ("numpy", "fakecupy", "cupy")


class DeviceArray(np.ndarray):
    """A numpy array that behaves like a CuPy array where that matters to ``lm``: see the
    module docstring. Reductions give 0-d arrays, as CuPy's do."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if method not in ("__call__", "reduce", "accumulate"):
            raise TypeError(f"numpy.{ufunc.__name__}.{method} called on a device array")
        _refuse_host((*inputs, *(out or ())), f"numpy.{ufunc.__name__}")
        args = [_unwrap(x) for x in inputs]
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        raise TypeError(f"host numpy.{func.__name__} called on a device array")


DeviceArray.__module__ = "cupy"  # what lm.backend looks at to tell a device array


def _unwrap(x):
    return x.view(np.ndarray) if isinstance(x, DeviceArray) else x


def _wrap(x):
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, np.ndarray):
        return x if isinstance(x, DeviceArray) else x.view(DeviceArray)
    if isinstance(x, np.generic):
        return np.asarray(x).view(DeviceArray)
    return x


def _leaves(x):
    if isinstance(x, (list, tuple)):
        for v in x:
            yield from _leaves(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    else:
        yield x


def _refuse_host(values, where: str) -> None:
    for v in _leaves(values):
        if type(v) is np.ndarray:
            raise TypeError(f"{where}: a host numpy array mixed with device arrays")


def _unwrap_tree(x):
    if isinstance(x, list):
        return [_unwrap_tree(v) for v in x]
    if isinstance(x, tuple):
        return tuple(_unwrap_tree(v) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap_tree(v) for k, v in x.items()}
    return _unwrap(x)


class FakeCupy(types.ModuleType):
    """The stand-in ``cupy`` module: numpy's functions on ``DeviceArray`` only (host arrays
    enter through ``asarray`` and ``array`` and leave through ``asnumpy``). Ufunc methods
    such as ``add.reduceat`` are absent; ``argsort`` is stable, as CuPy's."""

    def __init__(self, devices: int = 1):
        super().__init__("fakecupy")
        count = devices
        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=lambda: count)
        )

    def asarray(self, a, dtype=None):
        if isinstance(a, DeviceArray) and (dtype is None or a.dtype == dtype):
            return a
        return np.array(_unwrap(a), dtype=dtype).view(DeviceArray)

    def array(self, a, dtype=None):
        return np.array(_unwrap(a), dtype=dtype).view(DeviceArray)

    def asnumpy(self, a):
        return np.array(_unwrap(a))

    def argsort(self, a, axis=-1):
        _refuse_host([a], "fakecupy.argsort")
        return _wrap(np.argsort(_unwrap(a), axis=axis, kind="stable"))

    def __getattr__(self, name):
        obj = getattr(np, name)
        if isinstance(obj, type) or not callable(obj):
            return obj  # dtypes, errstate, constants

        def device_function(*args, **kwargs):
            _refuse_host((args, kwargs), f"fakecupy.{name}")
            result = obj(*_unwrap_tree(args), **_unwrap_tree(kwargs))
            return kwargs["out"] if kwargs.get("out") is not None else _wrap(result)

        return device_function


FAKE_CUPY = FakeCupy()


def install_fake(monkeypatch, devices: int = 1) -> FakeCupy:
    """Make ``lm.backend`` take the stand-in for CuPy (undone with the monkeypatch)."""
    fake = FAKE_CUPY if devices == 1 else FakeCupy(devices)
    monkeypatch.setattr(backend, "_cupy_module", fake)
    return fake


def put(backends: str, tree):
    """``tree`` (arrays, sparse gradients, dicts, lists and tuples of them) moved to the
    backend's device (numpy: as it is)."""
    return tree if backends == "numpy" else _put(tree)


def _put(x):
    if isinstance(x, sparse.Rows):
        return sparse.Rows(_put(x.index), _put(x.values), x.shape)
    if isinstance(x, sparse.Cols):
        return sparse.Cols(_put(x.runs), _put(x.values), x.shape)
    if isinstance(x, dict):
        return {k: _put(v) for k, v in x.items()}
    if type(x) in (list, tuple):
        return type(x)(_put(v) for v in x)
    return backend.to_device(x, "cuda")


def _arrays(tree):
    for v in _leaves(tree):
        if sparse.is_sparse(v):
            yield v.values
            yield getattr(v, "index", None)
        elif hasattr(v, "shape") and not np.isscalar(v):
            yield v


def assert_on(backends: str, tree) -> None:
    """Every array in ``tree`` (sparse gradients' too) lives on the backend's device."""
    for a in _arrays(tree):
        if a is None:
            continue
        if backends == "numpy":
            assert type(a) is np.ndarray, f"expected a numpy array, got {type(a)}"
        else:
            assert backend.on_device(a), f"expected a device array, got {type(a)}"


def assert_close(got, want, rtol: float = 1e-5, atol: float = 1e-5) -> None:
    """``got`` (on any device; arrays, floats, sparse gradients, dicts and lists of them)
    equals ``want`` (host) within float32 tolerances."""
    if isinstance(want, dict):
        assert set(got) == set(want)
        for k in want:
            assert_close(got[k], want[k], rtol, atol)
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert_close(g, w, rtol, atol)
    elif sparse.is_sparse(want):
        assert type(got) is type(want)
        np.testing.assert_allclose(backend.to_host(got.dense()), want.dense(), rtol, atol)
    else:
        np.testing.assert_allclose(backend.to_host(got), want, rtol, atol)


def select(request, monkeypatch) -> str:
    """The fixture's body: set up the backend named by ``request.param`` or skip."""
    name = request.param
    if name == "fakecupy":
        install_fake(monkeypatch)
    elif name == "cupy":
        monkeypatch.setattr(backend, "_cupy_module", None)  # the real one, never the fake
        problem = backend.cuda_problem()
        if problem is not None:
            pytest.skip(f"needs CuPy and a CUDA GPU: {problem}")
    return name
