"""Integer parameter checks shared by the models and the hardware components.

Hardware components (``hw/``) validate their keyword-only parameters with these helpers
before any Amaranth object is built, so that a bad width or depth raises one clear
exception naming the parameter instead of an elaboration traceback from inside Amaranth;
the cycle models in :mod:`model.units` use the same checks and messages. Model fields
(specs, formats, training options) use them with ``type_error=ValueError``: every bad
field of a model is a ``ValueError`` naming it.
"""

from __future__ import annotations

import operator
from typing import Any


def check_int(
    name: str,
    value: Any,
    *,
    minimum: int,
    maximum: int | None = None,
    type_error: type[Exception] = TypeError,
) -> int:
    """Return ``value`` as an ``int`` after checking its type and range.

    Parameters
    ----------
    name : str
        Parameter name used in the messages.
    value : object
        The value given by the caller; anything accepted by :func:`operator.index`.
    minimum : int
        Smallest allowed value (inclusive).
    maximum : int or None
        Largest allowed value (inclusive), or ``None`` for no upper bound.
    type_error : type of Exception
        Raised when ``value`` is not an integer (``TypeError`` for hardware parameters,
        ``ValueError`` for model fields).

    Returns
    -------
    int
        The checked value.

    Raises
    ------
    TypeError
        ``"{name}: must be an integer, not {value!r}"`` if ``value`` is not an integer
        (``bool`` is rejected too); ``type_error`` when given.
    ValueError
        ``"{name}: {value} is out of range (allowed {minimum}..{maximum})"``, or
        ``"(allowed {minimum} or more)"`` without an upper bound.
    """
    if isinstance(value, bool):
        raise type_error(f"{name}: must be an integer, not {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise type_error(f"{name}: must be an integer, not {value!r}") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise ValueError(f"{name}: {number} is out of range (allowed {allowed_range(minimum, maximum)})")
    return number


def allowed_range(minimum: int, maximum: int | None) -> str:
    """``"1..1024"``, or ``"1 or more"`` without an upper bound: the range in every message."""
    return f"{minimum}..{maximum}" if maximum is not None else f"{minimum} or more"


def check_field(name: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """:func:`check_int` for a model field: a non-integer is a ``ValueError`` too."""
    return check_int(name, value, minimum=minimum, maximum=maximum, type_error=ValueError)
