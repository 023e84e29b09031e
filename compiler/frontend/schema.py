"""The shape of a spec file, as pydantic models that remember positions.

`validate` turns a loaded tree into these models, and `expand` reads them:
every default lives here, once.  Each model keeps the located mapping it was
read from, so `expand` can point at the exact key or value that is wrong.

Unknown keys are forbidden everywhere except inside a node, where keys other
than the structural ones below are the op's parameters or the block's
arguments; those are checked against the op or block once expanded.
"""
from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from ..errors import Loc
from .load import Map, Seq

DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "uint8", "bool")
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"

Name = str
Ref = str  # the name of a node, an input, or a block instance (optionally '.output')
Dim = Union[int, str]


class Located(BaseModel):
    """A model read from a located mapping; `loc`, `key_loc` and `value_loc`
    say where it and its entries were written."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)
    _source: Map | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_positions(cls, data, handler):
        model = handler(data)
        if isinstance(data, Map):
            model._source = data
        return model

    @property
    def _written(self) -> Map | None:
        # A private attribute read as `self._source` goes through pydantic's
        # __getattr__: that was 0.3 s of 0.5 s of expanding ResNet-152, as
        # the position helpers below run for every value. The slot is direct.
        private = self.__pydantic_private__
        return private.get("_source") if private else None

    @property
    def loc(self) -> Loc | None:
        source = self._written
        return source.loc if source is not None else None

    def has(self, key: str) -> bool:
        """Whether `key` (as written in YAML: 'in', not 'inputs') was given."""
        source = self._written
        return source is not None and key in source

    def key_loc(self, key) -> Loc | None:
        source = self._written
        return source.key_locs.get(key, source.loc) if source is not None else None

    def value_loc(self, key) -> Loc | None:
        source = self._written
        return source.loc_of(key) if source is not None else None

    def written(self, key) -> Map | Seq | Any:
        """The value of `key` as loaded, with the positions of its entries."""
        source = self._written
        return source.get(key) if source is not None else None

    def entry_loc(self, key, entry) -> Loc | None:
        """Where the value of `entry` inside the mapping or list `key` is."""
        inner = self.written(key)
        return inner.loc_of(entry) if isinstance(inner, (Map, Seq)) else self.value_loc(key)

    def entry_key_loc(self, key, entry) -> Loc | None:
        """Where the key `entry` inside the mapping `key` is."""
        inner = self.written(key)
        return inner.key_locs.get(entry, inner.loc) if isinstance(inner, Map) else self.value_loc(key)


class InputSpec(Located):
    shape: list[Dim]
    dtype: Literal[DTYPES] = "float32"  # type: ignore[valid-type]
    doc: str | None = None


class Args(Located):
    """Keys that are an op's parameters or a block's arguments."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})


class NodeSpec(Args):
    """A node: an op with its parameters, or an instance of a block with its
    arguments. `in` names the inputs (default: the previous node)."""

    op: str | None = None
    block: str | None = None
    inputs: Union[Ref, list[Ref], None] = Field(default=None, alias="in")
    repeat: Union[int, str, list[Any], None] = None
    when: Union[bool, str, None] = None
    overrides: dict[int, Args] | None = None
    doc: str | None = None

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.op is None) == (self.block is None):
            raise ValueError("a node needs exactly one of 'op' (a layer) or 'block' (an instance of a block)")
        return self


# Keys of a node that are not op parameters or block arguments.
NODE_KEYS = tuple(f.alias or name for name, f in NodeSpec.model_fields.items())


class StateSpec(Located):
    """A state variable of a cell block: its shape per sample (the batch
    dimension N is implied), its initial value, and the node whose output
    becomes the state at the next step."""

    shape: list[Any]
    init: float = 0.0
    next: Ref
    doc: str | None = None


class BlockSpec(Located):
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


class SpecFile(Located):
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

    @property
    def file(self) -> str:
        return self.loc.file if self.loc else "<string>"


def keys_of(model: type[BaseModel]) -> list[str]:
    """The keys a mapping of this kind may hold, as written in YAML."""
    return [f.alias or name for name, f in model.model_fields.items()]
