"""Generic fixtures shared by every test module."""

from __future__ import annotations

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
