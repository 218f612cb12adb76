"""The book's cue sheet: what a listener hears in each section, and where, with the producer's
notes.

A :class:`Cue` is ambience (the bed under a scene), music or an effect, placed at the section's
opening, throughout it, on a moment (the words of the prose it plays on) or at its close (under
its choices, or its ending). The :class:`CueSheet` holds each section's cues and the producer's
notes on the whole. The book prints it in its notes and the HTML shows each section's cues beside
it; no audio is made. :meth:`CueSheet.from_dict` refuses, in one line, a document that is not one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from questfoundry.book.model import valid_id
from questfoundry.contracts.errors import StateError

KINDS = ("ambience", "music", "effect")
PLACEMENTS = ("opening", "throughout", "moment", "close")
#: the longest text of a cue's field, and of the producer's notes
MAX_TEXT = 2000


@dataclass(frozen=True)
class Cue:
    """One cue: its kind, the sound, where it plays (``moment``: on the words of ``moment``) and
    the producer's note on making it."""

    KINDS: ClassVar[tuple[str, ...]] = KINDS
    PLACEMENTS: ClassVar[tuple[str, ...]] = PLACEMENTS

    kind: str
    sound: str
    placement: str
    moment: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise StateError(f"a cue's kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.placement not in PLACEMENTS:
            raise StateError(
                f"a cue's placement must be one of {', '.join(PLACEMENTS)}, "
                f"not {str(self.placement)[:40]!r}"
            )
        for name in ("sound", "moment", "note"):
            object.__setattr__(self, name, _text(getattr(self, name), f"a cue's {name}"))
        if not self.sound:
            raise StateError("a cue must say what is heard")

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class CueSheet:
    """Each section's cues (by id, only sections with some) and the producer's notes."""

    cues: Mapping[str, tuple[Cue, ...]]
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "sections": {i: [c.to_dict() for c in cues] for i, cues in self.cues.items()},
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CueSheet:
        """The cue sheet a state document holds; :class:`StateError` (one line) when it is not
        one."""
        sections = data.get("sections") if isinstance(data, Mapping) else None
        if not isinstance(sections, Mapping):
            raise StateError("the cue sheet must map section ids to their cues")
        cues = {}
        for key, listed in sections.items():
            ident = valid_id(key, "cue sheet's section id")
            if not isinstance(listed, list) or not all(isinstance(c, Mapping) for c in listed):
                raise StateError(f"the cue sheet's cues of {ident!r} must be a list")
            try:
                made = tuple(Cue(**{k: v for k, v in c.items() if k in _FIELDS}) for c in listed)
            except TypeError:
                raise StateError(f"a cue of {ident!r} lacks its kind, sound or placement") from None
            if made:
                cues[ident] = made
        return cls(cues, _text(data.get("notes", ""), "the cue sheet's notes"))


_FIELDS = ("kind", "sound", "placement", "moment", "note")


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise StateError(f"{what} must be text, not {type(value).__name__}")
    text = " ".join(value.split())
    if len(text) > MAX_TEXT:
        raise StateError(f"{what} is {len(text)} characters long; at most {MAX_TEXT} fit")
    return text
