"""netspec's compiler: YAML spec -> validated, shape-checked torch module.

The stages, one module each, in the order they run:
load (YAML with positions) -> validate (pydantic) -> expand (blocks, repeats,
variants) -> graph (networkx, structural checks) -> shapes (inference) ->
emit (torch.fx) -> report.  `compiler.api.compile_file` runs them all.
"""
