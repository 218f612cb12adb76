"""What a run would do and cost, found without calling any provider (``run LOOP --estimate``).

The loop really runs — its steps, its prompts with their context, its retries — but every call is
answered here instead of by a provider:

- a call the cache already answers is answered from the cache, free, exactly as the real run
  would be; so a run the cache holds whole is forecast at $0, and the prompts that follow are
  the ones the real run will send;
- any other call is answered by a stand-in answer of the expected length, and priced by the
  provider's cost model on the prompt's tokens (estimated as the gateway does, four characters
  a token) and the answer's: prose of the length the step asked for (``words``, else
  :data:`DEFAULT_WORDS`), an instance of the schema whose texts run :data:`TEXT_WORDS` words, its
  choices (``enum``) spread evenly (so about half the reviews send a section back, erring on
  the side of cost), its open-ended lists :data:`LIST_ITEMS` long; an image, as the gateway
  estimates one.

What the run saves goes to a :class:`Overlay` over the project's state (read through, written
nowhere) and its files to a temporary folder, so a forecast changes nothing: not the state, not
the cache, not the ledger.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.protocols import Capability
from questfoundry.contracts.records import Reply, Usage
from questfoundry.gateway.admission import CHARS_PER_TOKEN
from questfoundry.gateway.codec import decode

if TYPE_CHECKING:
    from questfoundry.contracts.protocols import StateStore
    from questfoundry.gateway.plan import Plan
    from questfoundry.runtime import Runtime
    from questfoundry.studio.role import Role

#: how long prose is taken to run when the step does not say
DEFAULT_WORDS = 200
#: how long each text of a structured answer is taken to run
TEXT_WORDS = 16
#: items in a list whose schema does not fix its length (a section's choices)
LIST_ITEMS = 2
#: a stand-in word: five characters with its space, about 1.25 tokens as English words run
WORD = "tale "
#: the smallest PNG file: what a forecast's image steps are given
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8ffff3f0005fe02fea7d6a4a90000000049454e44ae426082"
)


class Forecast:
    """:class:`~questfoundry.studio.calls.Calls` answering from the cache or by stand-in
    answers; see the module docstring."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def ask(
        self,
        role: Role,
        prompt: str,
        instructions: str,
        params: Mapping[str, Any],
        words: int | None,
    ) -> Reply:
        request = role.request(prompt, instructions=instructions, params=params)
        plan = self.runtime.gateway.plan(request)
        hit = await self._cached(plan)
        if hit is not None:
            return replace(hit, role=role.name, key=plan.key)
        text: str | None = None
        image: bytes | None = None
        usage = plan.estimate
        if plan.kind == "image":
            image = PNG
        else:
            schema = (params.get("response_schema") or {}).get("schema")
            if schema is None:
                text = (WORD * (words or DEFAULT_WORDS)).strip()
            else:
                text = json.dumps(_Instance(prompt).of(schema, schema), ensure_ascii=False)
            output = math.ceil(len(text) / CHARS_PER_TOKEN)
            cap = plan.params.get("max_tokens")
            usage = Usage(usage.input_tokens, min(output, cap) if cap else output)
        model = self.runtime.cost_model(plan.provider)
        cost = None if model is None else model.price(plan.model, usage)
        return Reply(
            plan.provider, plan.model, text, image, usage, cost, role=role.name, key=plan.key
        )

    async def forget(self, reply: Reply) -> None:
        """Nothing: a forecast leaves the cache as it found it."""

    async def _cached(self, plan: Plan) -> Reply | None:
        cache = self.runtime.cache
        if cache is None or not plan.read or not plan.key:
            return None
        raw = await asyncio.to_thread(cache.get, plan.key)
        return None if raw is None else decode(raw, plan.provider)


class _Instance:
    """A valid instance of a structured-output schema of the expected size (module docstring).

    Choices (``enum``) are picked by a hash of the prompt and the place in the answer, so the
    same request always gets the same answer and many requests spread over every choice.
    """

    def __init__(self, seed: str) -> None:
        self.seed = seed

    def of(self, schema: Any, root: Mapping[str, Any], where: str = "") -> Any:
        if not isinstance(schema, Mapping):
            return self._text()
        if "$ref" in schema:
            return self.of(_resolved(root, schema["$ref"]), root, where)
        for key in ("anyOf", "oneOf", "allOf"):
            if schema.get(key):
                return self.of({**schema, key: None, **schema[key][0]}, root, where)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            choices = schema["enum"]
            digest = hashlib.sha256(f"{self.seed}\0{where}".encode()).digest()
            return choices[digest[0] % len(choices)]
        kind = schema.get("type", "string")
        kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
        return self._typed(kind, schema, root, where)

    def _typed(
        self, kind: str, schema: Mapping[str, Any], root: Mapping[str, Any], where: str
    ) -> Any:
        if kind == "object":
            properties = schema.get("properties") or {}
            return {name: self.of(sub, root, f"{where}/{name}") for name, sub in properties.items()}
        if kind == "array":
            low = int(schema.get("minItems", 0))
            count = max(low, min(int(schema.get("maxItems", LIST_ITEMS)), LIST_ITEMS))
            return [self.of(schema.get("items"), root, f"{where}/{i}") for i in range(count)]
        numbers: dict[str, Callable[[], Any]] = {
            "integer": lambda: int(schema.get("minimum", 1)),
            "number": lambda: float(schema.get("minimum", 1)),
            "boolean": lambda: True,
            "null": lambda: None,
        }
        if kind in numbers:
            return numbers[kind]()
        text = self._text()
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        text = text.ljust(low, "a")
        return text if high is None else text[: int(high)]

    @staticmethod
    def _text() -> str:
        return (WORD * TEXT_WORDS).strip()


def _resolved(root: Mapping[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node.get(part, {}) if isinstance(node, Mapping) else {}
    return node


class Overlay:
    """The project's state as a forecast sees it: reads fall through to ``store``, writes and
    deletions stay here and vanish with it."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.capabilities = store.capabilities - {Capability.SYNC}  # it writes nowhere
        self._written: dict[str, dict[str, Any] | None] = {}

    def get(self, key: str) -> dict[str, Any] | None:
        if key in self._written:
            return copy.deepcopy(self._written[key])
        return self.store.get(key)

    def set(self, key: str, document: Mapping[str, Any], ttl: float | None = None) -> None:
        self._written[key] = copy.deepcopy(dict(document))

    def delete(self, key: str) -> bool:
        existed = self.get(key) is not None
        self._written[key] = None
        return existed

    def list_keys(self, prefix: str = "") -> list[str]:
        keys = set(self.store.list_keys(prefix))
        for key, document in self._written.items():
            if key.startswith(prefix):
                (keys.add if document is not None else keys.discard)(key)
        return sorted(keys)

    def update(
        self,
        key: str,
        change: Callable[[dict[str, Any] | None], Mapping[str, Any] | None],
        ttl: float | None = None,
    ) -> dict[str, Any] | None:
        new = change(self.get(key))
        if new is None:
            self.delete(key)
            return None
        self.set(key, new)
        return self.get(key)

    def close(self) -> None:
        """Nothing: the store underneath belongs to the runtime."""
