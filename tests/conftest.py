"""Generic fixtures shared by every test module."""

from __future__ import annotations

import devices
import numpy as np
import pytest
from click.testing import CliRunner


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator with a fixed seed, so every test is repeatable."""
    return np.random.default_rng(0)


@pytest.fixture
def runner() -> CliRunner:
    """A click CliRunner; result.stdout and result.stderr are kept apart."""
    return CliRunner()


@pytest.fixture
def lm_cli():
    """The ``lm`` click group."""
    from lm.cli import main

    return main


@pytest.fixture(params=devices.BACKENDS)
def backends(request, monkeypatch) -> str:
    """The array backend a test runs on (see tests/devices.py): "numpy" always, "fakecupy" (a
    strict stand-in for CuPy made of numpy arrays) always, and "cupy" only where CuPy imports
    and ``cupy.cuda.runtime.getDeviceCount() > 0`` (skipped elsewhere). Move inputs with
    ``devices.put(backends, tree)``."""
    return devices.select(request, monkeypatch)
