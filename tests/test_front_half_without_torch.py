"""Loading, validation, expansion, the checks, shape inference, the counts,
the report and the picture need no torch: they run in a Python where
importing torch fails."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from common import ROOT, SPECS

BLOCKED = textwrap.dedent("""
    import sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "safetensors", "timm"):
                raise ImportError(name + " is not importable here")

    sys.meta_path.insert(0, Refuse())
""")

ANALYZE = BLOCKED + textwrap.dedent("""
    import json
    from compiler.api import analyze_file
    from compiler.tools.picture import to_dot
    from compiler.tools.report import io_text, summary_dict, summary_text

    for spec, variant in json.loads(sys.argv[1]):
        graph = analyze_file(spec, variant)
        summary_text(graph, "block", weights_only=True)
        summary_dict(graph)
        to_dot(graph, 1)
        print(io_text(graph).splitlines()[0], sum(n.n_params for n in graph.nodes.values()))
    assert not any(m.split(".")[0] == "torch" for m in sys.modules)
""")

CLI = BLOCKED + textwrap.dedent("""
    from compiler.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_analysis_and_report_without_torch():
    import json
    specs = [(str(SPECS / "resnet.yaml"), "50"), (str(SPECS / "googlenet.yaml"), "paper"),
             (str(SPECS / "lstm_cell.yaml"), None), (str(SPECS / "rnn.yaml"), "lstm")]
    done = run(ANALYZE, json.dumps(specs))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "resnet (variant 50): ok 25557032"  # torchvision's resnet50 has as many
    assert len(lines) == len(specs)


def test_check_summary_and_ops_commands_without_torch():
    for args in (["check", str(SPECS / "densenet.yaml")], ["summary", str(SPECS / "lenet.yaml"), "--json"],
                 ["ops"], ["schema"], ["diff", str(SPECS / "vgg.yaml"), str(SPECS / "vgg.yaml"), "--variant", "A",
                                       "--variant-b", "E"]):
        done = run(CLI, *args)
        assert done.returncode == 0, (args, done.stderr)
    done = run(CLI, "check", str(ROOT / "tests" / "golden" / "kernel_too_large.yaml"))
    assert done.returncode == 2 and "kernel 3x3 is larger" in done.stderr


def test_check_and_summary_need_neither_networkx_nor_other_commands():
    # What makes `check` answer at once: no networkx (the structural walks are
    # plain Python) and no scan of installed packages for more commands.
    refuse = BLOCKED.replace('("torch", "torchvision", "safetensors", "timm")',
                             '("torch", "torchvision", "safetensors", "timm", "networkx", "service")')
    assert refuse != BLOCKED
    for args in (["check", str(SPECS / "resnet.yaml"), "--variant", "152"], ["summary", str(SPECS / "googlenet.yaml")]):
        done = run(refuse + CLI[len(BLOCKED):], *args)
        assert done.returncode == 0, (args, done.stderr)
        assert "cannot be loaded" not in done.stderr  # the service's commands were not even looked up


def test_check_looks_up_no_pydantic_plugins_and_reads_no_package_metadata():
    # pydantic's plugin look-up reads every installed package's metadata; the
    # compiler's commands use no plugin, so they answer without the look-up.
    code = CLI.replace("sys.exit(main(sys.argv[1:]))",
                       "code = main(sys.argv[1:])\n"
                       "import pydantic.plugin._loader as loader\n"
                       "assert list(loader.get_plugins()) == []\n"
                       "assert 'importlib.metadata' not in sys.modules, 'importlib.metadata was imported'\n"
                       "sys.exit(code)")
    done = run(code, "check", str(SPECS / "resnet.yaml"), "--variant", "152")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("resnet (variant 152): ok")
    # An error found by pydantic's validation is still reported as one.
    done = run(code, "check", str(ROOT / "tests" / "golden" / "kernel_too_large.yaml"))
    assert done.returncode == 2 and "kernel 3x3 is larger" in done.stderr, done.stderr


def test_a_chosen_pydantic_plugin_setting_keeps_pydantic_own_loader():
    import os
    code = CLI.replace("sys.exit(main(sys.argv[1:]))",
                       "code = main(sys.argv[1:])\n"
                       "import pydantic.plugin._loader as loader\n"
                       "assert hasattr(loader, '_plugins'), 'not pydantic own loader'\n"
                       "sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code, "check", str(SPECS / "lenet.yaml")], capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={**os.environ, "PYDANTIC_DISABLE_PLUGINS": "some"})
    assert done.returncode == 0, done.stderr
