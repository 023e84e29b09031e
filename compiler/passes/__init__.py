"""Passes over the expanded graph, in the order they run:

signature (each op exists, its arity, its parameters) -> structure (cycles,
topological order, unused nodes) -> shapes (inference) -> costs (parameters
and multiply-adds); bounds reads the largest size of each symbolic dim,
multiples what each must be a multiple of.
Each recurses into node bodies.
"""
from . import bounds, costs, multiples, shapes, signature, structure

__all__ = ["bounds", "costs", "multiples", "shapes", "signature", "structure"]
