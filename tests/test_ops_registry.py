"""The op registry knows every op's name without importing the op families,
and imports a family when one of its ops is first looked up: what it lists
is what importing every module of compiler/ops registers."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from common import ROOT

LAZY = textwrap.dedent("""
    import sys
    from compiler.ops import OPS
    from compiler.ops.families import FAMILIES
    loaded = lambda: sorted(m.rpartition('.')[2] for m in sys.modules
                            if m.startswith('compiler.ops.') and m.rpartition('.')[2] in FAMILIES)
    assert loaded() == [], loaded()
    assert 'conv2d' in OPS and 'no_such_op' not in OPS and OPS.get('no_such_op') is None
    assert loaded() == [], loaded()
    assert OPS['conv2d'].name == 'conv2d'
    assert loaded() == ['conv'], loaded()
    print(len(OPS))
""")


def test_looking_up_an_op_imports_its_family_only():
    done = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 60


def test_the_table_of_families_is_what_the_modules_register():
    import importlib
    import pkgutil

    import compiler.ops as ops
    from compiler.ops.base import Op
    from compiler.ops.families import FAMILIES

    for module in pkgutil.iter_modules(ops.__path__):
        importlib.import_module(f"compiler.ops.{module.name}")
    registered = {name: type(op).__module__.rpartition(".")[2] for name, op in ops.OPS._ops.items()}
    table = {name: family for family, names in FAMILIES.items() for name in names}
    assert registered == table
    assert sorted(ops.OPS) == sorted(table)
    assert all(isinstance(ops.OPS[name], Op) and ops.OPS[name].name == name for name in table)
    assert set(ops.public_ops()) == {name for name in table if not ops.OPS[name].internal}
    assert {"scan", "tuple_item"} <= set(table) - set(ops.public_ops())  # internal: made by expansion only


def test_a_name_missing_from_the_table_is_refused():
    import pytest

    from compiler.ops.base import Op, register

    class Unlisted(Op):
        name = "unlisted_op"

    with pytest.raises(ValueError, match="missing from compiler/ops/families.py"):
        register(Unlisted)
