"""The front end: a spec's text to a graph of nodes.

load (YAML with positions) -> validate (pydantic: the typed, located tree)
-> expand (parameters, variants, blocks, repeats and cells).
"""
from .expand import expand
from .load import load_file, load_text
from .validate import validate

__all__ = ["expand", "load_file", "load_text", "validate"]
