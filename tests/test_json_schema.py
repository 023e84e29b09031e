"""The JSON Schema `netspec schema` prints: generated from the spec's models
and the op registry, valid draft 2020-12, accepting every spec of the zoo
and refusing broken ones, checked by the jsonschema package (not ours)."""
from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from common import ROOT, SPECS

from compiler.editor.json_schema import spec_schema
from compiler.ops import public_ops

SCHEMA_FILE = SPECS / "netspec.schema.json"
MODELINE = "# yaml-language-server: $schema=netspec.schema.json"


@pytest.fixture(scope="module")
def validator():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def as_json(text: str):
    """A spec as an editor's YAML extension sees it: keys are strings."""
    return json.loads(json.dumps(yaml.safe_load(text)))


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_spec_is_valid_and_names_the_schema(validator, spec):
    text = spec.read_text()
    assert text.splitlines()[0] == MODELINE
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(as_json(text))]
    assert not errors, errors


LENET = (SPECS / "lenet.yaml").read_text()
BROKEN = {
    "misspelt parameter": ("kernel: 5", "kernal: 5"),
    "parameter of the wrong type": ("kernel: 5", "kernel: five"),
    "unknown op": ("op: conv2d", "op: convolution2d"),
    "unknown top-level key": ("name: lenet", "name: lenet\nnodez: {}"),
}


@pytest.mark.parametrize("old,new", BROKEN.values(), ids=BROKEN)
def test_broken_specs_fail(validator, old, new):
    assert old in LENET
    assert list(validator.iter_errors(as_json(LENET.replace(old, new, 1))))


def test_expressions_are_accepted_where_parameters_are(validator):
    assert not list(validator.iter_errors(as_json(LENET.replace("kernel: 5", "kernel: $size", 1))))


def test_every_op_and_its_parameters_are_in_the_schema():
    branches = {b["if"]["properties"]["op"]["const"]: b["then"] for b in spec_schema()["$defs"]["NodeSpec"]["allOf"]}
    assert set(branches) == set(public_ops())
    conv = branches["conv2d"]["properties"]["kernel"]
    assert conv["description"] and "out_channels" in branches["conv2d"]["required"]


def test_the_committed_schema_file_is_current():
    done = subprocess.run([sys.executable, "-m", "compiler.cli", "schema", "-o", str(SCHEMA_FILE), "--check"],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
