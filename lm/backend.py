"""The one place the array module comes from: numpy by default, CuPy on a GPU.

The array module follows the data, as ``cupy.get_array_module`` does: a math function asks
``xp = backend.xp_of(x)`` of its input array and allocates and computes with ``xp``
(``xp.empty``, ``xp.tanh(a, out=a)``), so the same code runs on numpy arrays on the host and
on CuPy arrays on a GPU. Operators, methods, slicing and ``@`` are the same in both already.
``numpy`` (re-exported here) is for the host-side things: random generators (draws stay on
the host, so the CPU and the GPU see the same random numbers), dtypes, initialisation,
``errstate``. No other module imports numpy directly (tests/test_backend.py checks the math
modules), and only this one imports CuPy, lazily, the first time a CuPy array is met.

Devices: "cpu" (numpy) and "cuda" (CuPy). ``resolve(device)`` takes a device name, or the
environment variable ``LM_DEVICE`` when it is None, and raises ``DeviceError`` with a one-line
message when it is unknown or unavailable; ``to_device`` and ``to_host`` move dicts (and
lists, tuples) of arrays.

A few numpy-only idioms that are the fastest on the CPU (``np.add.reduceat``,
``np.maximum.reduceat``, ``np.repeat`` with an array of counts) have helpers here: numpy
arrays take exactly the numpy call, other arrays a formulation in functions that CuPy
documents (``cumsum``, ``take``, ``diff``, ``searchsorted``, ``concatenate``, slices). The
generic formulations are public (``*_generic``) so that tests can run them on numpy arrays.
"""

from __future__ import annotations

import itertools
import os

import numpy

from lm.errors import DeviceError

Array = numpy.ndarray  # in type hints: a numpy.ndarray or a cupy.ndarray
DEVICES = ("cpu", "cuda")
GPU_HINT = (
    "pip install 'lm[gpu]' (cupy-cuda12x; cupy-cuda13x for CUDA 13) on a machine with an NVIDIA GPU"
)

_ndarray = numpy.ndarray
_cupy_module = None  # cupy, once imported


def _cupy():
    """The cupy module, imported on first use."""
    global _cupy_module
    if _cupy_module is None:
        import cupy

        _cupy_module = cupy
    return _cupy_module


def on_device(a) -> bool:
    """Whether ``a`` is a CuPy array (told by its type's module; CuPy is not imported)."""
    return type(a) is not _ndarray and type(a).__module__.startswith("cupy")


def xp_of(*arrays):
    """The array module of the arguments: cupy if any of them is a CuPy array, else numpy.

    >>> xp_of(numpy.zeros(2), 1.0) is numpy
    True
    """
    for a in arrays:
        if type(a) is not _ndarray and type(a).__module__.startswith("cupy"):
            return _cupy()
    return numpy


# ----------------------------------------------------------------------------- devices


def cuda_problem() -> str | None:
    """Why "cuda" cannot be used here (CuPy missing or seeing no GPU), or None when it can."""
    try:
        cp = _cupy()
    except (ImportError, OSError, RuntimeError) as e:  # missing, or its CUDA libraries fail
        return f"CuPy cannot be imported ({type(e).__name__}: {e})"
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except RuntimeError as e:  # cupy.cuda.runtime.CUDARuntimeError: no driver
        return f"CuPy finds no CUDA device ({type(e).__name__}: {e})"
    return None if n > 0 else "CuPy finds no CUDA device"


def device_names() -> tuple[str, ...]:
    """The devices usable here: ("cpu",) or ("cpu", "cuda")."""
    return DEVICES if cuda_problem() is None else ("cpu",)


_chosen: str | None = None  # the command line's --device for this command (``choose``)


def choose(device: str | None) -> None:
    """Make ``device`` what ``resolve(None)`` gives from now on in this process (the command
    line's ``--device``; None: back to ``LM_DEVICE`` or "cpu")."""
    global _chosen
    _chosen = device


def resolve(device: str | None = None) -> str:
    """The device to use, "cpu" or "cuda": ``device``, or when it is None the one the command
    line chose (``choose``), else the environment variable ``LM_DEVICE``, else "cpu".
    DeviceError when the name is unknown, or when it is "cuda" and CuPy is missing or sees
    no GPU.

    Good: ``resolve("cuda")`` on a machine with CuPy and a GPU. Bad: ``resolve("gpu")``
    (DeviceError: the names are "cpu" and "cuda").
    """
    source = "--device"
    if device is None:
        device = _chosen
    if device is None:
        device, source = os.environ.get("LM_DEVICE") or "cpu", "LM_DEVICE"
    if device not in DEVICES:
        raise DeviceError(
            f"{source} {device!r} is not a device; choose one of {', '.join(DEVICES)}"
        )
    if device == "cuda":
        problem = cuda_problem()
        if problem is not None:
            raise DeviceError(f"--device cuda needs CuPy and a CUDA GPU: {problem}; {GPU_HINT}")
    return device


def _map(tree, fn):
    """``tree`` with ``fn`` applied to every leaf of its dicts, lists and tuples."""
    if isinstance(tree, dict):
        return {k: _map(v, fn) for k, v in tree.items()}
    if type(tree) in (list, tuple):
        return type(tree)(_map(v, fn) for v in tree)
    return fn(tree)


def to_host(tree):
    """``tree`` (an array, or dicts, lists and tuples of them) with every CuPy array copied to
    a numpy array; numpy arrays and other leaves are returned as they are (no copy)."""
    return _map(tree, lambda a: _cupy().asnumpy(a) if on_device(a) else a)


def to_device(tree, device: str | None = None):
    """``tree`` with its arrays on ``device`` (``resolve(device)``): "cpu" is ``to_host``;
    "cuda" copies every numpy array to the GPU (CuPy arrays and other leaves stay as they
    are). The dtypes are kept."""
    if resolve(device) == "cpu":
        return to_host(tree)
    cp = _cupy()
    return _map(tree, lambda a: cp.asarray(a) if isinstance(a, _ndarray) else a)


def synchronize() -> None:
    """Wait until the GPU has done all the work queued so far (a no-op unless CuPy is in use):
    for timings, which would otherwise see only the time to queue the kernels."""
    if _cupy_module is not None and hasattr(_cupy_module, "cuda"):
        device = getattr(_cupy_module.cuda, "Device", None)
        if device is not None:
            device().synchronize()


# ----------------------------------------------------------------------------- helpers


def stable_argsort(a: Array) -> Array:
    """Indices that sort the 1-D ``a``, equal values keeping their order (CuPy's argsort is
    always stable and takes no ``kind``)."""
    xp = xp_of(a)
    return numpy.argsort(a, kind="stable") if xp is numpy else xp.argsort(a)


def run_starts(a: Array) -> Array:
    """(R,) the indices where a run of equal values begins in the non-empty 1-D ``a``."""
    xp = xp_of(a)
    return xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), a[1:] != a[:-1]]))


def exclusive_cumsum(a: Array) -> Array:
    """(n,) [0, a_0, a_0 + a_1, ..., sum of a[:-1]] for the non-empty 1-D ``a``: offsets."""
    xp = xp_of(a)
    return xp.concatenate([xp.zeros(1, dtype=a.dtype), xp.cumsum(a)[:-1]])


def segment_sum(x: Array, starts: Array, axis: int = 0) -> Array:
    """Sums of ``x`` over the segments [starts_i, starts_{i+1}) along ``axis`` (the last one
    ends at the axis's end); ``starts`` strictly increasing. ``np.add.reduceat`` on numpy."""
    if xp_of(x) is numpy:
        return numpy.add.reduceat(x, starts, axis=axis)
    return segment_sum_generic(x, starts, axis)


def segment_sum_generic(x: Array, starts: Array, axis: int = 0) -> Array:
    """``segment_sum`` as differences of a float64 cumulative sum taken at the segment bounds
    (float64, so that a long float32 sum loses nothing to the subtraction)."""
    xp = xp_of(x, starts)
    axis %= x.ndim
    n = x.shape[axis]
    bounds = xp.concatenate([starts, xp.asarray([n], dtype=starts.dtype)])
    zero = xp.zeros(x.shape[:axis] + (1,) + x.shape[axis + 1 :], dtype=numpy.float64)
    cum = xp.concatenate([zero, xp.cumsum(x, axis=axis, dtype=numpy.float64)], axis=axis)
    return xp.diff(xp.take(cum, bounds, axis=axis), axis=axis).astype(x.dtype)


def segment_max(x: Array, starts: Array, axis: int = 0) -> Array:
    """Maxima of ``x`` over the segments of ``segment_sum``. ``np.maximum.reduceat`` on
    numpy (CuPy has no ``maximum.reduceat``)."""
    if xp_of(x) is numpy:
        return numpy.maximum.reduceat(x, starts, axis=axis)
    return segment_max_generic(x, starts, axis)


def segment_max_generic(x: Array, starts: Array, axis: int = 0) -> Array:
    """``segment_max`` as one slice maximum per segment (a loop over the segments: meant for
    few of them, such as the classes of the class head)."""
    xp = xp_of(x, starts)
    axis %= x.ndim
    bounds = [*starts.tolist(), x.shape[axis]]
    lead = (slice(None),) * axis
    parts = [
        x[lead + (slice(a, b),)].max(axis=axis, keepdims=True)
        for a, b in itertools.pairwise(bounds)
    ]
    return xp.concatenate(parts, axis=axis)


def repeat(x: Array, counts: Array, axis: int = 0) -> Array:
    """Element i of ``x`` along ``axis`` repeated counts_i times; ``counts`` a 1-D integer
    array. ``np.repeat`` on numpy (CuPy's repeat takes counts only as a host list)."""
    if xp_of(x) is numpy:
        return numpy.repeat(x, counts, axis=axis)
    return repeat_generic(x, counts, axis)


def repeat_generic(x: Array, counts: Array, axis: int = 0) -> Array:
    """``repeat`` as a gather: output position j takes the element whose segment of the
    cumulative counts holds j."""
    xp = xp_of(x, counts)
    ends = xp.cumsum(counts)
    total = int(ends[-1]) if len(ends) else 0
    index = xp.searchsorted(ends, xp.arange(total), side="right")
    return xp.take(x, index, axis=axis)
