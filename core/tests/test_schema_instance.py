"""Arbitrary valid instances of JSON Schemas: valid, deterministic, varied, honest about limits."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from questfoundry.testing.schema_instance import (
    SchemaInstanceError,
    instance_text,
    schema_instance,
    seed_of,
)

SECTION = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 12},
        "title": {"type": "string", "minLength": 3, "maxLength": 40},
        "prose": {"type": "string", "minLength": 20},
        "mood": {"enum": ["grim", "hopeful", "strange"]},
        "choices": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {"label": {"type": "string"}, "to": {"type": "integer"}},
                "required": ["label", "to"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["id", "title", "choices"],
    "additionalProperties": False,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "nested objects": {
        "type": "object",
        "properties": {"outer": {"type": "object", "properties": {"inner": SECTION}}},
        "required": ["outer"],
    },
    "array of sections with bounds": {
        "type": "object",
        "properties": {"sections": {"type": "array", "items": SECTION, "minItems": 3}},
        "required": ["sections"],
    },
    "exact item count": {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 5,
        "maxItems": 5,
    },
    "enums of mixed values": {"enum": ["a", 1, None, True, {"k": "v"}]},
    "const": {"const": {"fixed": [1, 2]}},
    "integer ranges": {
        "type": "object",
        "properties": {
            "tiny": {"type": "integer", "minimum": 3, "maximum": 3},
            "negative": {"type": "integer", "maximum": -50},
            "exclusive": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 2},
            "stepped": {"type": "integer", "minimum": 10, "maximum": 100, "multipleOf": 7},
        },
        "required": ["tiny", "negative", "exclusive", "stepped"],
    },
    "numbers": {
        "type": "array",
        "items": {"type": "number", "exclusiveMinimum": 0.5, "maximum": 0.75},
        "minItems": 4,
    },
    "required and optional": {
        "type": "object",
        "properties": {name: {"type": "string"} for name in "abcdefgh"},
        "required": ["a", "c"],
    },
    "strings with minLength": {
        "type": "array",
        "items": {"type": "string", "minLength": 30, "maxLength": 31},
        "minItems": 2,
    },
    "nullable union": {
        "type": "object",
        "properties": {
            "maybe": {"type": ["string", "null"]},
            "any": {
                "anyOf": [{"type": "integer"}, {"type": "array", "items": {"type": "boolean"}}]
            },
        },
        "required": ["maybe", "any"],
        "additionalProperties": False,
    },
    "one of with a discriminator": {
        "oneOf": [
            {"type": "object", "properties": {"kind": {"const": "a"}}, "required": ["kind"]},
            {"type": "object", "properties": {"kind": {"const": "b"}}, "required": ["kind"]},
        ]
    },
    "all of": {
        "allOf": [
            {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
            {"properties": {"y": {"type": "boolean"}}, "required": ["y"]},
        ]
    },
    "references": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        },
        "type": "object",
        "properties": {
            "nodes": {"type": "array", "items": {"$ref": "#/$defs/node"}, "minItems": 2}
        },
        "required": ["nodes"],
    },
    "recursive tree": {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["name", "children"],
            }
        },
        "$ref": "#/$defs/node",
    },
    "unique items": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 5},
        "minItems": 4,
        "uniqueItems": True,
    },
    "tuple": {
        "type": "array",
        "prefixItems": [{"type": "string"}, {"type": "integer"}],
        "items": False,
        "minItems": 2,
    },
    "formats": {
        "type": "object",
        "properties": {
            f: {"type": "string", "format": f} for f in ("date", "date-time", "email", "uuid")
        },
        "required": ["date", "date-time", "email", "uuid"],
    },
    "extra properties demanded": {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "minProperties": 3,
    },
    "draft 7 definitions": {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"id": {"type": "string", "minLength": 2}},
        "type": "array",
        "items": {"$ref": "#/definitions/id"},
    },
}

SEEDS = [f"prompt {n}" for n in range(15)]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCHEMAS))
def test_every_instance_is_valid(name: str) -> None:
    schema = SCHEMAS[name]
    checker = jsonschema.validators.validator_for(schema)(
        schema, format_checker=jsonschema.FormatChecker()
    )
    for seed in SEEDS:
        checker.validate(schema_instance(schema, seed))


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_the_same_seed_gives_the_same_instance(name: str) -> None:
    schema = SCHEMAS[name]
    assert schema_instance(schema, "one seed") == schema_instance(schema, "one seed")


@pytest.mark.slow
def test_different_seeds_give_different_instances() -> None:
    seen = {json.dumps(schema_instance(SECTION, seed), sort_keys=True) for seed in SEEDS}
    assert len(seen) == len(SEEDS)


def test_optional_properties_are_sometimes_left_out_and_sometimes_given() -> None:
    schema = SCHEMAS["required and optional"]
    instances = [schema_instance(schema, seed) for seed in SEEDS]
    assert all({"a", "c"} <= set(instance) for instance in instances)
    given = {name for instance in instances for name in instance}
    missing = {name for instance in instances for name in "abcdefgh" if name not in instance}
    assert given == set("abcdefgh")
    assert missing  # optional means the caller must cope with absence


@pytest.mark.slow
def test_nullable_fields_are_sometimes_null() -> None:
    schema = SCHEMAS["nullable union"]
    values = [schema_instance(schema, seed)["maybe"] for seed in SEEDS * 2]
    assert None in values and any(isinstance(v, str) for v in values)


@pytest.mark.slow
def test_instances_mean_nothing_beyond_the_schema() -> None:
    """Integers that name other things (choice targets) are arbitrary, not made consistent."""
    targets = [c["to"] for seed in SEEDS for c in schema_instance(SECTION, seed)["choices"]]
    assert len(set(targets)) > 5


def test_instance_text_is_json_of_an_instance_chosen_by_the_request() -> None:
    first = instance_text(SECTION, "gpt-4o-mini", ["write section 1"])
    assert json.loads(first) == schema_instance(
        SECTION, seed_of("gpt-4o-mini", ["write section 1"])
    )
    assert first == instance_text(SECTION, "gpt-4o-mini", ["write section 1"])
    assert first != instance_text(SECTION, "gpt-4o-mini", ["write section 2"])


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "integer", "minimum": 5, "maximum": 4}, "no integer"),
        ({"type": "string", "pattern": "^[0-9]{3}$", "minLength": 3}, "does not match"),
        ({"$ref": "https://example.com/schema.json"}, "local references"),
        ({"$ref": "#/$defs/missing"}, "unresolvable"),
        ({"type": "no-such-type"}, "not a valid JSON Schema"),
        ({"type": "array", "items": {"enum": [1]}, "minItems": 2, "uniqueItems": True}, "distinct"),
        ({"not": {}}, "could not build"),
    ],
)
def test_a_schema_it_cannot_satisfy_is_an_error_not_invalid_data(
    schema: dict[str, Any], problem: str
) -> None:
    with pytest.raises(SchemaInstanceError, match=problem):
        schema_instance(schema, "seed")
