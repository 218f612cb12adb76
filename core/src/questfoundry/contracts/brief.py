"""What the author tells the studio, and what loops establish for every role to know.

Three kinds of state document, each with a fixed key and shape so any loop can fill them and the
engine can put them in every prompt:

- :class:`Brief` at :data:`BRIEF` — the author's direction: premise, genre, audience, tone, point
  of view, language, planned length and what to avoid. Set by ``questfoundry brief``, ``init`` or
  a run's flags.
- :class:`StyleGuide` at :data:`STYLE` — the voice the book keeps (``style_tune_up`` writes it).
- :class:`CanonEntry` at ``CANON + <id>`` — one established fact (``lore_deepening`` writes them),
  with the sections it matters to, so the most relevant entries reach a section's prompt first.

Each ``from_dict`` refuses a document that is not one with a one-line
:class:`~questfoundry.contracts.errors.StateError`, so a hand-edited state file cannot crash a run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from questfoundry.contracts.errors import StateError

#: state keys: the brief, the style guide, and the folder of canon entries
BRIEF = "book/brief"
STYLE = "book/style"
CANON = "book/canon/"

#: the points of view a book may be told in (the gamebook's own is the second person)
POVS = ("second", "first", "third")
#: longest text a field of a brief, a style guide or a canon entry may hold
MAX_TEXT = 4000
#: the most sections a brief may plan (a loop run's own bound applies too)
MAX_PLANNED = 1000
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")
#: how each field reads in a prompt and in the front matter
LABELS = {
    "premise": "Premise",
    "genre": "Genre",
    "audience": "Audience",
    "tone": "Tone",
    "pov": "Point of view",
    "language": "Language",
    "sections": "Length",
    "limits": "Avoid",
}


@dataclass(frozen=True)
class Brief:
    """The author's direction for the book; every field is optional.

    ``sections`` is the planned length: a run without ``--sections`` asks for that many.
    """

    premise: str = ""
    genre: str = ""
    audience: str = ""
    tone: str = ""
    pov: str = "second"
    language: str = "en"
    sections: int | None = None
    limits: str = ""

    def __post_init__(self) -> None:
        for name in ("premise", "genre", "audience", "tone", "limits"):
            object.__setattr__(self, name, _text(getattr(self, name), f"the brief's {name}"))
        if self.pov not in POVS:
            raise StateError(
                f"the brief's pov must be one of {', '.join(POVS)}, not {_shown(self.pov)}"
            )
        if not isinstance(self.language, str) or not _LANGUAGE.fullmatch(self.language):
            raise StateError(
                f"the brief's language must be a language code such as en, fr or pt-BR, "
                f"not {_shown(self.language)}"
            )
        planned = self.sections
        if planned is not None and (
            isinstance(planned, bool) or not isinstance(planned, int) or not planned >= 1
        ):
            raise StateError(f"the brief's sections must be a whole number from 1, not {planned!r}")
        if planned is not None and planned > MAX_PLANNED:
            raise StateError(f"the brief's sections must be at most {MAX_PLANNED}, not {planned}")

    def updated(self, changes: Mapping[str, Any]) -> Brief:
        """This brief with ``changes`` (field → value; None leaves a field as it is)."""
        unknown = sorted(set(changes) - set(LABELS))
        if unknown:
            raise StateError(f"a brief has no field {unknown[0]!r} (fields: {', '.join(LABELS)})")
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Brief:
        """The brief a state document holds (None: the empty brief); extra keys are ignored."""
        if data is None:
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def shown(self) -> dict[str, str]:
        """The fields the author set (those not at their default), labelled, in order: for
        prompts and the front matter. An empty brief shows nothing."""
        values = {
            "premise": self.premise,
            "genre": self.genre,
            "audience": self.audience,
            "tone": self.tone,
            "pov": f"{self.pov} person" if self.pov != "second" else "",
            "language": self.language if self.language != "en" else "",
            "sections": f"{self.sections} sections" if self.sections else "",
            "limits": self.limits,
        }
        return {LABELS[name]: value for name, value in values.items() if value}


@dataclass(frozen=True)
class StyleGuide:
    """The book's voice: a paragraph describing it, and short rules (``"No modern slang."``)."""

    guide: str = ""
    rules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "guide", _text(self.guide, "the style guide"))
        object.__setattr__(self, "rules", _texts(self.rules, "the style guide's rules"))

    def to_dict(self) -> dict[str, Any]:
        return {"guide": self.guide, "rules": list(self.rules)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StyleGuide:
        return cls(data.get("guide", ""), _sequence(data.get("rules", ()), "the style guide"))


@dataclass(frozen=True)
class CanonEntry:
    """One established fact of the book's world.

    ``sections`` names the ids of the sections it matters to (a section's prompt ranks these
    first); ``tags`` are words it is about (names, places, objects), matched against a section's
    title and summary when ranking.
    """

    name: str
    fact: str
    sections: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _text(self.name, "a canon entry's name"))
        object.__setattr__(self, "fact", _text(self.fact, "a canon entry's fact"))
        object.__setattr__(self, "sections", _texts(self.sections, "a canon entry's sections"))
        object.__setattr__(self, "tags", _texts(self.tags, "a canon entry's tags"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fact": self.fact,
            "sections": list(self.sections),
            "tags": list(self.tags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanonEntry:
        if not isinstance(data, Mapping) or "fact" not in data:
            raise StateError("a canon entry must be an object with a fact")
        return cls(
            data.get("name", ""),
            data["fact"],
            _sequence(data.get("sections", ()), "a canon entry's sections"),
            _sequence(data.get("tags", ()), "a canon entry's tags"),
        )


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise StateError(f"{what} must be text, not {type(value).__name__}")
    text: str = value.strip()
    if len(text) > MAX_TEXT:
        raise StateError(f"{what} is {len(text)} characters long; at most {MAX_TEXT} fit")
    return text


def _texts(values: Any, what: str) -> tuple[str, ...]:
    return tuple(_text(value, what) for value in _sequence(values, what))


def _sequence(values: Any, what: str) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)):
        raise StateError(f"{what} must be a list")
    return tuple(values)


def _shown(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
