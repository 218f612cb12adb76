"""Arbitrary valid instances of a JSON Schema: what a fake model answers a structured-output call.

:func:`schema_instance` builds an instance from a seed string, deterministically (the same seed
and schema always give the same instance; different seeds give different ones). The data mean
nothing beyond the schema — placeholder words, numbers anywhere in range, optional properties
sometimes left out — which is what code reading a model's structured reply must cope with.

It understands the keywords structured-output APIs accept: ``type`` (one or a list), ``enum``,
``const``, ``properties``/``required``/``additionalProperties``, ``items``/``prefixItems`` with
``minItems``/``maxItems``/``uniqueItems``, numeric bounds and ``multipleOf``, ``minLength``/
``maxLength``, common ``format`` values, ``anyOf``/``oneOf``/``allOf`` and local ``$ref``
(``#/$defs/…``, ``#/definitions/…``). Each candidate is checked with :mod:`jsonschema`; a schema it
cannot satisfy (a ``pattern``, say) raises :class:`SchemaInstanceError` instead of returning
invalid data.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

#: placeholder words strings are made of: no sense beyond the schema
WORDS = (
    "amber", "basalt", "cinder", "dune", "ember", "fable", "glade", "harbor", "iris", "juniper",
    "kestrel", "lantern", "meadow", "nectar", "onyx", "pebble", "quill", "raven", "sable",
    "thistle", "umber", "vale", "willow", "yarrow", "zephyr",
)  # fmt: skip
#: how many candidates are tried before a schema is declared unsatisfiable
ATTEMPTS = 20
#: bounds used when the schema gives none
DEFAULT_MAX_ITEMS = 4
DEFAULT_MAX_LENGTH = 48
DEFAULT_NUMBER_SPAN = 1000
MAX_DEPTH = 12
#: from this depth on only what the schema demands is made (no optional properties, the fewest
#: items), so recursive schemas end and deep instances stay small
SHRINK_DEPTH = 4


class SchemaInstanceError(ValueError):
    """The schema is not one this generator can satisfy (or none can)."""


def schema_instance(schema: Mapping[str, Any], seed: str = "") -> Any:
    """A deterministic instance of ``schema`` valid against it, chosen by ``seed``."""
    from jsonschema import exceptions as schema_errors  # on first use: a fake starts faster
    from jsonschema import validators

    validator_class = validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except schema_errors.SchemaError as error:
        raise SchemaInstanceError(f"not a valid JSON Schema: {error.message}") from None
    validator = validator_class(schema)
    digest = hashlib.sha256(json.dumps(schema, sort_keys=True, default=str).encode()).hexdigest()
    problem = ""
    for attempt in range(ATTEMPTS):
        builder = _Builder(schema, random.Random(f"{digest}\x00{seed}\x00{attempt}"))
        try:
            candidate = builder.build(schema, 0)
        except SchemaInstanceError as error:
            problem = str(error)
            continue
        failure = schema_errors.best_match(validator.iter_errors(candidate))
        if failure is None:
            return candidate
        problem = failure.message
    raise SchemaInstanceError(f"could not build a valid instance of the schema: {problem}")


def instance_text(schema: Mapping[str, Any], *request: Any) -> str:
    """The JSON text a fake model answers a structured-output request with.

    An instance of ``schema`` chosen by ``request`` (model, messages, …): the same request always
    gets the same instance, different prompts get different ones.
    """
    return json.dumps(schema_instance(schema, seed_of(*request)), ensure_ascii=False)


def seed_of(*parts: Any) -> str:
    """A seed naming a request by its parts (model, messages, …): the same parts, the same seed."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class _Builder:
    def __init__(self, root: Mapping[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng

    def build(self, schema: Any, depth: int) -> Any:
        if schema is True or schema == {}:
            return self._word()
        if not isinstance(schema, Mapping):
            raise SchemaInstanceError("a schema that accepts nothing")
        if depth > MAX_DEPTH:
            raise SchemaInstanceError("the schema nests deeper than the generator goes")
        schema = self._resolve(schema)
        if "allOf" in schema:
            schema = self._merge(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(list(schema["enum"]))
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                branch = self._merge({"allOf": [rest, self.rng.choice(schema[key])]})
                return self.build(branch, depth + 1)
        return self._typed(schema, self._type(schema), depth)

    def _typed(self, schema: Mapping[str, Any], kind: str, depth: int) -> Any:
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return self._string(schema)
        if kind in ("integer", "number"):
            return self._number(schema, integer=kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None

    # ------------------------------------------------------------------ keywords

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return schema
        if not ref.startswith("#"):
            raise SchemaInstanceError(f"only local references are followed, not {ref!r}")
        target: Any = self.root
        for escaped in ref.lstrip("#").strip("/").split("/") if ref != "#" else ():
            part = escaped.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise SchemaInstanceError(f"unresolvable reference {ref!r}")
            target = target[part]
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return self._merge({"allOf": [rest, target]}) if rest else self._resolve(target)

    def _merge(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """``allOf`` folded into one schema: properties and required lists joined, bounds kept."""
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for given in schema.get("allOf", ()):
            if not isinstance(given, Mapping):
                continue
            part = self._resolve(given)
            if "allOf" in part:
                part = self._merge(part)
            for key, value in part.items():
                if key == "properties" and key in merged:
                    merged[key] = {**merged[key], **value}
                elif key == "required" and key in merged:
                    merged[key] = list(dict.fromkeys([*merged[key], *value]))
                else:
                    merged.setdefault(key, value)
        return merged

    def _type(self, schema: Mapping[str, Any]) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared
        if isinstance(declared, list) and declared:
            concrete = [t for t in declared if t != "null"]
            if not concrete or (len(concrete) < len(declared) and self.rng.random() < 0.25):
                return "null"
            return str(self.rng.choice(concrete))
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if any(k in schema for k in ("minLength", "maxLength", "format")):
            return "string"
        if any(k in schema for k in ("minimum", "maximum", "multipleOf")):
            return "number"
        return self.rng.choice(("string", "integer", "boolean"))

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        result: dict[str, Any] = {}
        for name, sub in properties.items():
            if name in required or (depth < SHRINK_DEPTH and self.rng.random() < 0.6):
                result[name] = self.build(sub, depth + 1)
        for name in required - set(properties):
            extra = schema.get("additionalProperties", True)
            result[name] = self.build(extra if isinstance(extra, Mapping) else True, depth + 1)
        minimum = int(schema.get("minProperties", 0))
        extra_schema = schema.get("additionalProperties", True)
        while len(result) < minimum and extra_schema is not False:
            name = f"{self._word()}_{len(result)}"
            sub = extra_schema if isinstance(extra_schema, Mapping) else True
            result.setdefault(name, self.build(sub, depth + 1))
        return result

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = list(schema.get("prefixItems") or ())
        items = schema.get("items", True)
        if isinstance(items, list):  # drafts 4 to 2019-09: a list of items is a prefix
            prefix, items = items, schema.get("additionalItems", True)
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", max(low, DEFAULT_MAX_ITEMS)))
        if items is False:
            high = min(high, len(prefix))
        if depth >= SHRINK_DEPTH:
            high = low
        count = self.rng.randint(low, max(low, high))
        result: list[Any] = []
        unique = bool(schema.get("uniqueItems"))
        tries = 0
        while len(result) < count:
            tries += 1
            if tries > count * 10 + 10:
                raise SchemaInstanceError("cannot find enough distinct items")
            index = len(result)
            sub = prefix[index] if index < len(prefix) else items
            value = self.build(sub, depth + 1)
            if unique and any(_same(value, old) for old in result):
                continue
            result.append(value)
        return result

    def _string(self, schema: Mapping[str, Any]) -> str:
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt](self.rng)
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(low, DEFAULT_MAX_LENGTH)))
        length = self.rng.randint(low, max(low, min(high, low + DEFAULT_MAX_LENGTH)))
        text = ""
        while len(text) < length:
            text = f"{text} {self._word()}" if text else self._word()
        text = text[:length].rstrip() if len(text) > length else text
        while len(text) < length:  # rstrip may have eaten below the minimum
            text += self._word()[0]
        return text

    def _number(self, schema: Mapping[str, Any], *, integer: bool) -> int | float:
        low, high = _bounds(schema)
        step = schema.get("multipleOf")
        if integer:
            step = _integer_step(step)
        if step:
            first = math.ceil(low / step)
            last = math.floor(high / step)
            if first > last:
                raise SchemaInstanceError("no multiple of multipleOf lies in the range")
            value = self.rng.randint(first, last) * step
            return int(value) if integer else value
        if integer:
            first, last = math.ceil(low), math.floor(high)
            if first > last:
                raise SchemaInstanceError("no integer lies in the range")
            return self.rng.randint(first, last)
        return round(self.rng.uniform(low, high), 3) if low < high else low

    def _word(self) -> str:
        return self.rng.choice(WORDS)


def _bounds(schema: Mapping[str, Any]) -> tuple[float, float]:
    """The closed range a number may take; exclusive bounds move in by a small step."""
    low: float | None = schema.get("minimum")
    high: float | None = schema.get("maximum")
    exclusive_low = schema.get("exclusiveMinimum")
    exclusive_high = schema.get("exclusiveMaximum")
    nudge = 1e-3 if schema.get("type") != "integer" else 1
    if isinstance(exclusive_low, (int, float)) and not isinstance(exclusive_low, bool):
        low = max(low, exclusive_low + nudge) if low is not None else exclusive_low + nudge
    elif exclusive_low is True and low is not None:  # draft 4's boolean form
        low += nudge
    if isinstance(exclusive_high, (int, float)) and not isinstance(exclusive_high, bool):
        high = min(high, exclusive_high - nudge) if high is not None else exclusive_high - nudge
    elif exclusive_high is True and high is not None:
        high -= nudge
    if low is None and high is None:
        return 0, DEFAULT_NUMBER_SPAN
    if low is None:
        assert high is not None
        return high - DEFAULT_NUMBER_SPAN, high
    if high is None:
        return low, low + DEFAULT_NUMBER_SPAN
    return low, high


def _integer_step(step: Any) -> int | None:
    if isinstance(step, int) and not isinstance(step, bool) and step > 0:
        return step
    if isinstance(step, float) and step.is_integer() and step > 0:
        return int(step)
    if step is not None:
        raise SchemaInstanceError(f"integers with multipleOf {step!r} are not generated")
    return None


def _same(first: Any, second: Any) -> bool:
    return json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def _digits(rng: random.Random, count: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(count))


_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date": lambda r: f"20{r.randint(10, 39)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
    "date-time": lambda r: (
        f"20{r.randint(10, 39)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"
        f"T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z"
    ),
    "time": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z",
    "email": lambda r: f"{r.choice(WORDS)}@{r.choice(WORDS)}.example",
    "uri": lambda r: f"https://{r.choice(WORDS)}.example/{r.choice(WORDS)}",
    "uuid": lambda r: (
        f"{_digits(r, 8)}-{_digits(r, 4)}-4{_digits(r, 3)}-a{_digits(r, 3)}-{_digits(r, 12)}"
    ),
    "hostname": lambda r: f"{r.choice(WORDS)}.example",
    "ipv4": lambda r: ".".join(str(r.randint(1, 254)) for _ in range(4)),
}
