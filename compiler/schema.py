"""Stage 2: the shape of a spec file, as pydantic models.

Unknown keys are forbidden everywhere except inside a node, where keys other
than the structural ones below are the op's parameters or the block's
arguments; those are checked against the op or block once expanded.
"""
from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "uint8", "bool")
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"

Name = str
Ref = str  # the name of a node, an input, or a block instance (optionally '.output')
Dim = Union[int, str]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InputSpec(Strict):
    shape: list[Dim]
    dtype: Literal[DTYPES] = "float32"  # type: ignore[valid-type]
    doc: str | None = None


# Keys of a node that are not op parameters or block arguments.
NODE_KEYS = ("op", "block", "in", "repeat", "when", "overrides", "doc")


class NodeSpec(BaseModel):
    """A node: an op with its parameters, or an instance of a block with its
    arguments. `in` names the inputs (default: the previous node)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    op: str | None = None
    block: str | None = None
    inputs: Union[Ref, list[Ref], None] = Field(default=None, alias="in")
    repeat: Union[int, str, list[Any], None] = None
    when: Union[bool, str, None] = None
    overrides: dict[int, dict[str, Any]] | None = None
    doc: str | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.op is None) == (self.block is None):
            raise ValueError("a node needs exactly one of 'op' (a layer) or 'block' (an instance of a block)")
        return self


class StateSpec(Strict):
    """A state variable of a cell block: its shape per sample (the batch
    dimension N is implied), its initial value, and the node whose output
    becomes the state at the next step."""

    shape: list[Any]
    init: float = 0.0
    next: Ref
    doc: str | None = None


class BlockSpec(Strict):
    """A reusable subgraph. `params` maps each parameter to its default
    (null: the argument is required); `outputs` is one node name, or a mapping
    of output names to node names (default: the last node). A block with
    `state` is a cell: an instance runs it once per time step over a sequence."""

    params: dict[Name, Any] = {}
    inputs: list[Name] = ["x"]
    state: dict[Name, StateSpec] = {}
    nodes: dict[Name, NodeSpec] = Field(min_length=1)
    outputs: Union[Ref, dict[Name, Ref], None] = None
    doc: str | None = None


class SpecFile(Strict):
    netspec: Literal[1, "expanded"] = 1
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    description: str | None = None
    source: str | None = None  # set in expanded specs: the file they came from
    variant: str | None = None  # set in expanded specs: the variant chosen
    inputs: dict[Name, InputSpec] = Field(min_length=1)
    outputs: Union[Ref, dict[Name, Ref]]
    params: dict[Name, Any] = {}
    variants: dict[Union[str, int], dict[Name, Any] | None] = {}  # YAML reads `50:` as an int
    default_variant: Union[str, int, None] = None
    blocks: dict[Name, BlockSpec] = {}
    nodes: dict[Name, NodeSpec] = Field(min_length=1)
