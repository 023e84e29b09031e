"""netspec's compiler: YAML spec -> validated, shape-checked torch module.

The stages, one package each, in the order they run, each importing only
what lies below it (tests/test_imports.py holds them to that):

  frontend/  load (YAML with positions) -> validate (the typed, located tree)
             -> expand (parameters, variants, blocks, repeats, cells)
  passes/    signature -> structure -> shapes -> costs, on the ir/ graph
  backend/   emit (torch.fx), standalone (model.py), runtime modules
  tools/     artifact, report, picture, verify

ops/ holds the op registry: each op's parameters, shape rule, counts,
lowering and properties.  `compiler.api` runs the stages on a file or text.
"""
