"""The intermediate representation: graphs of named nodes whose values are
tensors with (partly symbolic) shapes."""
from .graph import Graph, Instance, Node, next_state, topological_order, walk
from . import dims
from .types import Dim, Shape, TensorInfo, TupleInfo, format_shape

__all__ = ["Dim", "dims", "Graph", "Instance", "Node", "Shape", "TensorInfo", "TupleInfo", "format_shape", "next_state", "topological_order", "walk"]
