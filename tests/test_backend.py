"""lm.backend: the array module follows the data, device names and LM_DEVICE, moving trees of
arrays, the helpers whose numpy path is a numpy-only idiom (against their generic
formulations), that the math modules take numpy only through lm.backend, and that the
stand-in for CuPy (tests/devices.py) is as strict as it claims."""

from __future__ import annotations

import ast
import pathlib
import sys

import devices
import numpy as np
import pytest

from lm import backend
from lm.errors import DeviceError, LMError

LM = pathlib.Path(backend.__file__).parent
MATH_MODULES = ("activations", "cells", "core", "inputs", "heads", "model", "optim", "sparse")


# ----------------------------------------------------------------------------- xp_of


def test_xp_of_host_values_is_numpy_and_imports_nothing(monkeypatch):
    def no_import():
        raise AssertionError("cupy imported for host values")

    monkeypatch.setattr(backend, "_cupy", no_import)
    assert backend.xp_of(np.zeros(3), np.float32(1), 2.0, [1, 2], None) is np
    assert backend.xp_of() is np
    assert not backend.on_device(np.zeros(2))


def test_xp_of_any_device_array_gives_its_module(monkeypatch):
    fake = devices.install_fake(monkeypatch)
    d = fake.asarray(np.ones(2))
    assert backend.on_device(d)
    assert backend.xp_of(d) is fake
    assert backend.xp_of(np.zeros(2), 1.0, d) is fake  # one is enough


# ----------------------------------------------------------------------------- devices


@pytest.fixture
def no_cupy(monkeypatch):
    """As on a machine without CuPy: ``import cupy`` raises ImportError."""
    monkeypatch.setattr(backend, "_cupy_module", None)
    monkeypatch.setitem(sys.modules, "cupy", None)


def test_resolve_defaults_to_cpu_and_reads_lm_device(monkeypatch, no_cupy):
    monkeypatch.delenv("LM_DEVICE", raising=False)
    assert backend.resolve() == "cpu"
    monkeypatch.setenv("LM_DEVICE", "")
    assert backend.resolve() == "cpu"
    monkeypatch.setenv("LM_DEVICE", "cpu")
    assert backend.resolve(None) == "cpu"
    monkeypatch.setenv("LM_DEVICE", "cuda")
    assert backend.resolve("cpu") == "cpu"  # an explicit device wins over the variable


def test_resolve_unknown_device_names_its_source(monkeypatch):
    monkeypatch.setenv("LM_DEVICE", "tpu")
    with pytest.raises(DeviceError, match=r"^LM_DEVICE 'tpu' is not a device; choose one of cpu"):
        backend.resolve()
    with pytest.raises(DeviceError, match=r"^--device 'gpu' is not a device"):
        backend.resolve("gpu")


def test_cuda_without_cupy_is_a_clear_one_line_error(monkeypatch, no_cupy):
    for ask in (lambda: backend.resolve("cuda"), lambda: backend.to_device({}, "cuda")):
        with pytest.raises(DeviceError) as info:
            ask()
        message = str(info.value)
        assert message.startswith("--device cuda needs CuPy and a CUDA GPU: CuPy cannot be")
        assert "pip install 'lm[gpu]'" in message and "\n" not in message
        assert isinstance(info.value, LMError)  # the CLI prints it on one line, exit 1
    monkeypatch.setenv("LM_DEVICE", "cuda")
    with pytest.raises(DeviceError, match="needs CuPy and a CUDA GPU"):
        backend.resolve()
    assert backend.device_names() == ("cpu",)


def test_cuda_with_cupy_but_no_gpu_is_an_error(monkeypatch):
    devices.install_fake(monkeypatch, devices=0)
    with pytest.raises(DeviceError, match="CuPy finds no CUDA device"):
        backend.resolve("cuda")
    assert backend.device_names() == ("cpu",)


def test_cuda_with_a_gpu_resolves(monkeypatch):
    devices.install_fake(monkeypatch)
    assert backend.resolve("cuda") == "cuda"
    assert backend.device_names() == ("cpu", "cuda")


# ----------------------------------------------------------------------------- to_device


def tree_of_arrays():
    return {
        "W": np.arange(6, dtype=np.float32).reshape(2, 3),
        "nested": {"ids": np.array([3, 1], dtype=np.int32), "t": 7, "name": "x"},
        "list": [np.ones(2), (np.zeros(1), None)],
    }


def test_to_device_cpu_and_to_host_keep_numpy_arrays_as_they_are(no_cupy):
    tree = tree_of_arrays()
    for moved in (backend.to_device(tree, "cpu"), backend.to_host(tree)):
        assert moved["W"] is tree["W"] and moved["nested"]["ids"] is tree["nested"]["ids"]
        assert moved["nested"]["t"] == 7 and moved["nested"]["name"] == "x"
        assert isinstance(moved["list"], list) and isinstance(moved["list"][1], tuple)
        assert moved["list"][1][1] is None


def test_to_device_and_back_is_a_round_trip(monkeypatch):
    devices.install_fake(monkeypatch)
    tree = tree_of_arrays()
    on = backend.to_device(tree, "cuda")
    assert backend.on_device(on["W"]) and backend.on_device(on["list"][1][0])
    assert on["nested"]["t"] == 7 and on["list"][1][1] is None
    assert backend.to_device(on, "cuda")["W"] is on["W"]  # already there: not copied
    back = backend.to_host(on)
    for got, want in ((back["W"], tree["W"]), (back["nested"]["ids"], tree["nested"]["ids"])):
        assert type(got) is np.ndarray and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert backend.to_device(on, "cpu")["list"][0].tolist() == [1.0, 1.0]


# ----------------------------------------------------------------------------- helpers


def segments(rng, n: int) -> np.ndarray:
    """Strictly increasing starts with starts[0] = 0: segments of length 1 and longer."""
    cuts = np.flatnonzero(rng.random(n - 1) < 0.4) + 1
    return np.concatenate([[0], cuts]).astype(np.int64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_segment_sum_and_max_generic_equal_reduceat(rng, axis, dtype):
    x = rng.normal(0, 3, (37, 23)).astype(dtype)
    starts = segments(rng, x.shape[axis])
    want = np.add.reduceat(x, starts, axis=axis)
    np.testing.assert_array_equal(backend.segment_sum(x, starts, axis), want)
    got = backend.segment_sum_generic(x, starts, axis)
    assert got.dtype == x.dtype and got.shape == want.shape
    exact = np.add.reduceat(x.astype(np.float64), starts, axis=axis)  # generic: float64 sums
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, exact, rtol=tol, atol=tol)
    want = np.maximum.reduceat(x, starts, axis=axis)
    np.testing.assert_array_equal(backend.segment_max_generic(x, starts, axis), want)
    np.testing.assert_array_equal(backend.segment_max(x, starts, axis), want)


def test_segment_sum_generic_keeps_a_short_segment_after_a_long_one_exact(rng):
    """The cumulative sum is float64: after 10^5 values (a float32 running sum of 10^5
    would be off by about 10^-2), a segment of 5 values still comes out to float32 precision."""
    x = np.concatenate([rng.normal(1, 1, 100_000), rng.normal(0, 1, 5)]).astype(np.float32)
    starts = np.array([0, 100_000])
    want = x[100_000:].astype(np.float64).sum()
    np.testing.assert_allclose(backend.segment_sum_generic(x, starts)[1], want, rtol=1e-6)


@pytest.mark.parametrize("axis", [0, 1])
def test_repeat_generic_equals_np_repeat(rng, axis):
    x = rng.normal(size=(5, 4))
    counts = np.array([2, 0, 3, 1, 1][: x.shape[axis]])
    want = np.repeat(x, counts, axis=axis)
    np.testing.assert_array_equal(backend.repeat_generic(x, counts, axis), want)
    np.testing.assert_array_equal(backend.repeat(x, counts, axis), want)
    assert backend.repeat_generic(x, np.zeros(x.shape[axis], int), axis).shape[axis] == 0


def test_sorting_and_run_helpers(rng):
    a = rng.integers(0, 5, 50)
    np.testing.assert_array_equal(backend.stable_argsort(a), np.argsort(a, kind="stable"))
    s = np.sort(a)
    np.testing.assert_array_equal(
        backend.run_starts(s), np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    )
    np.testing.assert_array_equal(backend.run_starts(np.array([4])), [0])
    w = np.array([3, 1, 4])
    np.testing.assert_array_equal(backend.exclusive_cumsum(w), [0, 3, 4])


def test_helpers_follow_the_data(backends, rng):
    """Each helper's result on the backend equals numpy's and stays on the device."""
    x = rng.normal(size=(9, 6)).astype(np.float32)
    starts, counts = np.array([0, 2, 3, 7]), np.array([1, 0, 2, 3, 1, 2])
    a = rng.integers(0, 4, 20)
    want = [
        np.add.reduceat(x, starts, axis=0),
        np.maximum.reduceat(x, starts, axis=0),
        np.repeat(x, counts, axis=1),
        np.argsort(a, kind="stable"),
        np.array([0, 2, 3, 7]),
        np.array([0, 1, 1, 3, 6, 7]),
    ]
    xd, sd, cd, ad = devices.put(backends, [x, starts, counts, a])
    sorted_ = devices.put(backends, np.array([1, 1, 2, 3, 3, 3, 3, 5]))
    got = [
        backend.segment_sum(xd, sd),
        backend.segment_max(xd, sd),
        backend.repeat(xd, cd, axis=1),
        backend.stable_argsort(ad),
        backend.run_starts(sorted_),
        backend.exclusive_cumsum(cd),
    ]
    devices.assert_on(backends, got)
    devices.assert_close(got, want)


# ----------------------------------------------------------------------------- imports


def module_level_imports(path: pathlib.Path):
    """The import statements of a module outside its functions (also under if/try)."""
    found, todo = [], list(ast.parse(path.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo.extend(ast.iter_child_nodes(node))
    return found


def imported_names(node) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return [node.module or ""]


@pytest.mark.parametrize("name", MATH_MODULES)
def test_math_modules_take_numpy_only_through_the_backend(name):
    """``from lm.backend import numpy as np`` for host things, ``backend.xp_of`` for arrays."""
    for node in module_level_imports(LM / f"{name}.py"):
        for module in imported_names(node):
            assert module.split(".")[0] != "numpy", (
                f"lm/{name}.py line {node.lineno} imports {module}: "
                "use `from lm.backend import numpy as np` and `backend.xp_of(x)`"
            )


def test_only_the_backend_imports_cupy():
    for path in sorted(LM.rglob("*.py")):
        if path.name == "backend.py" and path.parent == LM:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for module in imported_names(node):
                    assert module.split(".")[0] not in ("cupy", "cupyx"), f"{path} imports {module}"


# ----------------------------------------------------------------------------- the stand-in


def test_the_stand_in_refuses_host_arrays_and_numpy_only_idioms(monkeypatch):
    fake = devices.install_fake(monkeypatch)
    d, h = fake.asarray(np.arange(4.0)), np.arange(4.0)
    for bad in (
        lambda: d + h,  # a host operand
        lambda: fake.multiply(d, 2.0, out=np.empty(4)),  # a host output
        lambda: np.concatenate([d, d]),  # a host numpy function
        lambda: np.empty_like(d),
        lambda: np.add.reduceat(d, [0, 2]),  # a numpy-only ufunc method
        lambda: fake.concatenate([d, h]),
    ):
        with pytest.raises(TypeError):
            bad()
    assert backend.on_device(d * 2.0 + d) and backend.on_device(d.sum())
    assert backend.on_device(fake.tanh(d, out=d)) and float(fake.vdot(d, d)) > 0
    with pytest.raises(AttributeError):
        fake.add.reduceat  # noqa: B018 (CuPy has no maximum.reduceat either)
