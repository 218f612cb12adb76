"""What every conformance suite shares: a standard test is never replaced by accident.

A suite (``CacheBackendContract``, ``CostModelContract``, ``ProviderContract``) subclasses
:class:`StandardSuite`; its ``test_*`` methods are the standard tests. A backend's test class that
defines a test of the same name is refused when the class is created, since a silently replaced
standard test lets a non-conforming backend pass. Replace one on purpose with
:func:`replaces_standard_test`, saying why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_REPLACES = "__questfoundry_replaces_standard_test__"


def replaces_standard_test(reason: str) -> Callable[[F], F]:
    """Mark a test that deliberately replaces the standard test of the same name."""
    if not reason.strip():
        raise ValueError("say why the standard test is replaced")

    def mark(test: F) -> F:
        setattr(test, _REPLACES, reason)
        return test

    return mark


def standard_tests(cls: type) -> dict[str, type]:
    """Every standard test ``cls`` inherits, with the suite that defines it."""
    found: dict[str, type] = {}
    for base in reversed(cls.__mro__):
        if StandardSuite in base.__bases__:
            found.update((name, base) for name in vars(base) if name.startswith("test_"))
    return found


class StandardSuite:
    """Base class of the conformance suites."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if StandardSuite in cls.__bases__:
            return  # a suite itself
        standard = standard_tests(cls)
        for name, value in vars(cls).items():
            if name in standard and not hasattr(value, _REPLACES):
                raise TypeError(
                    f"{cls.__qualname__}.{name} silently replaces a standard test of "
                    f"{standard[name].__name__}; rename it, or decorate it with "
                    f"@replaces_standard_test('why')"
                )

    def test_no_standard_test_is_replaced(self) -> None:
        """Catches a test swapped in after the class was created."""
        cls = type(self)
        replaced = [
            name
            for name, suite in standard_tests(cls).items()
            if getattr(cls, name) is not vars(suite)[name]
            and not hasattr(getattr(cls, name), _REPLACES)
        ]
        assert replaced == []
