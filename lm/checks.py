"""Type checks shared by every configuration and API boundary (bool is not a number here)."""

from __future__ import annotations

import numbers


def is_int(x) -> bool:
    """An integer that is not a bool (True is not 1 in a config file)."""
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def is_real(x) -> bool:
    """A real number that is not a bool."""
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def require_int(name: str, value, lowest: int) -> None:
    """ValueError unless ``value`` is an integer >= ``lowest``."""
    if not is_int(value) or value < lowest:
        raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")


def require_choice(name: str, value, choices) -> None:
    """ValueError unless ``value`` is one of ``choices``, naming them."""
    if value in choices:
        return
    if len(choices) == 2:
        allowed = f"{choices[0]!r} or {choices[1]!r}"
    else:
        allowed = "one of " + ", ".join(map(str, choices))
    raise ValueError(f"{name} must be {allowed}, got {value!r}")
