"""``art_touch_up``: the art director plans a shot per section, the illustrator renders each.

State: ``book/shots/<id>`` (subject, composition, caption) and ``book/images/<id>`` (the image,
base64, and its media type as its bytes say). Both carry the digest of the prose they illustrate,
so the binder leaves out art made for a section that has since been rewritten. Bytes that are not
a PNG, JPEG, WebP or GIF image (an SVG, an HTML page) are refused: the report says so and the
section's image document keeps the reason instead of the bytes.
"""

from __future__ import annotations

import base64
from typing import Any

from questfoundry.kit import (
    IMAGES,
    SECTIONS,
    SHOTS,
    TEXT,
    LoopSpec,
    Section,
    Step,
    StepContext,
    Topology,
    each_section,
    image_problem,
    image_type,
    object_schema,
    prose_digest,
)

SHOT_SCHEMA = object_schema(subject=TEXT, composition=TEXT, caption=TEXT)


async def plan_shots(context: StepContext) -> None:
    async def plan(topology: Topology, section: Section, written: dict[str, Any]) -> dict[str, Any]:
        prompt = (
            f"Plan one illustration for this section of {topology.title!r}: its subject, its "
            f"composition and a caption.\n\nSection: {section.title}\n\n{written['prose']}"
        )

        def fix(shot: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
            if shot["subject"].strip():
                return shot, []
            repaired = {**shot, "subject": section.title}
            return repaired, [f"the shot of {section.id!r} had no subject (its title is used)"]

        shot = await context.structured(
            prompt, name="shot", schema=SHOT_SCHEMA, fix=fix, section=section.id
        )
        return {**shot, "digest": prose_digest(written["prose"])}

    await each_section(
        context, plan, writes=SHOTS, reads=SECTIONS, missing="no prose yet: run story_spark first"
    )


async def render_images(context: StepContext) -> None:
    async def render(topology: Topology, section: Section, shot: dict[str, Any]) -> dict[str, Any]:
        prompt = f"{shot['subject']}. {shot['composition']}".strip(" .") + "."
        image = await context.image(prompt)
        kept = {"caption": shot["caption"], "digest": shot["digest"]}
        problem = image_problem(image)
        if problem is not None:
            context.repaired(f"refused the image of {section.id!r}: {problem}")
            return kept | {"refused": problem}
        return kept | {"mime": image_type(image), "data": base64.b64encode(image).decode()}

    await each_section(context, render, writes=IMAGES, reads=SHOTS, missing="no shot planned")


ART_TOUCH_UP = LoopSpec(
    "art_touch_up",
    ("art_director", "illustrator", "gatekeeper"),
    "plan and make art",
    (
        Step(
            "plan_shots",
            "art_director",
            "Plan illustrations a reader would want: one clear subject, a simple composition.",
            plan_shots,
            reads=("topology", "sections"),
            writes=("shots",),
        ),
        Step(
            "render_images",
            "illustrator",
            "",
            render_images,
            reads=("shots",),
            writes=("images",),
        ),
    ),
)
