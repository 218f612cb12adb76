"""Between the core's values and ``google.genai.types``: requests out, replies back.

Gemini has no "system" or "assistant" roles in ``contents``: system messages become the
``system_instruction``, assistant messages are turns of role ``"model"``. Generation parameters
use the core's names (``max_tokens``, ``stop``) and are renamed to Gemini's; ones Gemini does not
know are ignored so a role configured for another provider still runs here. ``response_schema``
(structured output) becomes ``response_json_schema`` — the SDK's field for a raw JSON Schema —
with ``response_mime_type`` ``application/json``. An image call asks an image model for
``response_modalities=["IMAGE"]`` (``aspect_ratio`` and ``image_size`` pass into ``image_config``)
and takes the bytes of the first ``inline_data`` part of the reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from google.genai import types

from questfoundry.kit import NonRetriableProviderError, ProviderRequest, Usage, response_schema

PROVIDER = "gemini"

#: the core's parameter name → GenerateContentConfig's field
PARAMS = {
    "temperature": "temperature",
    "max_tokens": "max_output_tokens",
    "max_output_tokens": "max_output_tokens",
    "top_p": "top_p",
    "top_k": "top_k",
    "stop": "stop_sequences",
    "stop_sequences": "stop_sequences",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}

#: image parameters passed into ``ImageConfig`` as they are
IMAGE_PARAMS = ("aspect_ratio", "image_size")

#: Gemini's finish reasons under the names the other providers use
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter"}


def to_contents(request: ProviderRequest) -> tuple[list[types.ContentDict], str | None]:
    """The conversation as Gemini ``contents``, and the system instruction (None if there is none).

    A ``prompt`` is sent as the last user turn, after any messages. Turns are the SDK's typed
    dicts, not its models: it validates a dict once, a model it is handed again (in paired runs,
    about a tenth of the plugin's CPU a call).
    """
    system: list[str] = []
    contents: list[types.ContentDict] = []
    for message in request.messages:
        if message.role == "system":
            system.append(message.content)
            continue
        role = "model" if message.role in ("assistant", "model") else "user"
        contents.append({"role": role, "parts": [{"text": message.content}]})
    if request.prompt is not None:
        contents.append({"role": "user", "parts": [{"text": request.prompt}]})
    if not contents:
        raise NonRetriableProviderError(
            "a request needs at least one user message or a prompt", provider=PROVIDER
        )
    return contents, "\n\n".join(system) if system else None


def to_config(
    params: Mapping[str, Any], system: str | None, timeout: float | None, *, image: bool = False
) -> types.GenerateContentConfig:
    """Generation config from the core's parameters; ``timeout`` seconds overrides the client's.

    ``image`` asks for an image instead of text.
    """
    fields: dict[str, Any] = {}
    for name, value in params.items():
        field = PARAMS.get(name)
        if field == "stop_sequences" and isinstance(value, str):
            fields[field] = [value]  # Gemini takes a list of stop strings only
        elif field is not None and value is not None:
            fields[field] = value
    if image:
        fields["response_modalities"] = ["IMAGE"]
        picked = {name: params[name] for name in IMAGE_PARAMS if params.get(name) is not None}
        if picked:
            fields["image_config"] = picked
    elif structured := response_schema(params, PROVIDER):
        fields["response_mime_type"] = "application/json"
        fields["response_json_schema"] = structured[1]
    if system is not None:
        fields["system_instruction"] = system
    if timeout is not None:
        fields["http_options"] = types.HttpOptions(timeout=max(1, round(timeout * 1000)))
    try:
        return types.GenerateContentConfig(**fields)
    except pydantic.ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise NonRetriableProviderError(
            f"invalid generation parameter {where}: {problem['msg']}", provider=PROVIDER
        ) from None


def text_of(response: types.GenerateContentResponse) -> str:
    """The text of the first candidate, leaving out thought summaries and non-text parts.

    A prompt Gemini refused to answer has no candidate at all: that is not worth retrying.
    """
    if not response.candidates:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = getattr(feedback.block_reason, "value", feedback.block_reason)
            raise NonRetriableProviderError(
                f"Gemini blocked the prompt ({reason})", provider=PROVIDER
            )
        return ""
    content = response.candidates[0].content
    parts = content.parts if content is not None and content.parts else []
    return "".join(part.text for part in parts if part.text and not part.thought)


def image_of(response: types.GenerateContentResponse) -> bytes:
    """The bytes of the first image in the reply; a reply without one is not worth retrying."""
    text_of(response)  # a blocked prompt says so
    content = response.candidates[0].content if response.candidates else None
    for part in content.parts or () if content is not None else ():
        if part.inline_data is not None and part.inline_data.data:
            return part.inline_data.data
    reason = finish_reason_of(response) or "no reason given"
    raise NonRetriableProviderError(
        f"Gemini returned no image ({reason}); is the model an image model?", provider=PROVIDER
    )


def finish_reason_of(response: types.GenerateContentResponse) -> str | None:
    """``stop``, ``length``, ``content_filter``, or Gemini's own reason in lower case."""
    if not response.candidates or response.candidates[0].finish_reason is None:
        return None
    reason = response.candidates[0].finish_reason
    name = str(getattr(reason, "value", reason))
    return FINISH_REASONS.get(name, name.lower())


def usage_of(metadata: types.GenerateContentResponseUsageMetadata | None) -> Usage | None:
    """Tokens from ``usageMetadata``; thinking tokens are billed as output, so they count as such.

    ``promptTokenCount`` already includes ``cachedContentTokenCount``, as the core expects.
    """
    if metadata is None:
        return None
    return Usage(
        input_tokens=metadata.prompt_token_count or 0,
        output_tokens=(metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0),
        cached_input_tokens=metadata.cached_content_token_count or 0,
    )
