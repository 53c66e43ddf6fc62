#!/usr/bin/env python3
"""Every example in docs/openapi.json's schemas validates against its schema (JSON
Schema 2020-12, formats checked), so the documented examples cannot drift from the types.
Runs with .ci/.venv's python (jsonschema comes with openapi-spec-validator)."""
import json
import sys

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

doc = json.load(open(sys.argv[1]))
registry = Registry().with_resource("urn:doc", Resource(contents=doc, specification=DRAFT202012))
checked, failed = 0, 0
for name, schema in doc["components"]["schemas"].items():
    validator = jsonschema.Draft202012Validator(
        {"$ref": f"urn:doc#/components/schemas/{name}"},
        registry=registry,
        format_checker=jsonschema.FormatChecker(),
    )
    for example in schema.get("examples", []):
        checked += 1
        for error in validator.iter_errors(example):
            failed += 1
            print(f"{name} example: {error.message}", file=sys.stderr)
print(f"{checked} schema examples checked, {failed} problems")
sys.exit(1 if failed else 0)
