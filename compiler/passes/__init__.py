"""Passes over the expanded graph, in the order they run:

signature (each op exists, its arity, its parameters) -> structure (cycles,
topological order, unused nodes) -> shapes (inference) -> costs (parameters
and multiply-adds); bounds reads the largest size of each symbolic dim.
Each recurses into node bodies.
"""
from . import bounds, costs, shapes, signature, structure

__all__ = ["bounds", "costs", "shapes", "signature", "structure"]
