"""What a plotwright that follows the instructions answers: every slot of a book's
:class:`~questfoundry.book.shape.Shape` filled as laid out, for tests of the studio's drafts."""

from __future__ import annotations

from typing import Any

from questfoundry.book.shape import Part, Shape


def faithful_draft(shape: Shape, part: Part | None = None) -> list[dict[str, Any]]:
    """The sections of ``part`` (the whole book when None) as a reply of
    :func:`~questfoundry.book.shape.draft_schema` holds them: section ``n`` titled ``Room n``,
    each choice ``Walk to room t`` leading where its slot says."""
    part = part or Part(1, shape.size)
    return [
        {
            "title": f"Room {n}",
            "summary": f"What happens in room {n}.",
            "ending": not shape.targets(n),
            "choices": [{"text": f"Walk to room {t}", "target": t} for t in shape.targets(n)],
        }
        for n in range(part.first, part.last + 1)
    ]
