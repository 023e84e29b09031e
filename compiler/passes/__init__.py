"""Passes over the expanded graph, in the order they run:

signature (each op exists, its arity, its parameters) -> structure (cycles,
topological order, unused nodes) -> shapes (inference) -> costs (parameters
and multiply-adds).  Each recurses into node bodies.
"""
from . import costs, shapes, signature, structure

__all__ = ["costs", "shapes", "signature", "structure"]
