"""Generate the Python code for protos/*.proto, each file into the package
that owns it:

    protos/model_config.proto  ->  compiler/protocol/generated/   (config.pbtxt: the compiler writes it)
    protos/grpc_service.proto  ->  service/generated/             (the RPCs: the service speaks them)

    python -m service.protos_gen          # write the generated modules
    python -m service.protos_gen --check  # exit 1 if the committed files are stale

The generated modules are committed (so an install needs no protoc) and this
module is the one command that makes them; it lives in the service, the
package above both homes. Two edits are applied to protoc's output, both
mechanical:

1. Imports name the package of the imported module
   (`from compiler.protocol.generated import model_config_pb2`, or
   `from . import ...` within one package), since protoc writes top-level
   imports.
2. The descriptors are registered in a private pool
   (`compiler.protocol.generated.POOL`, one for both packages, since
   grpc_service.proto imports model_config.proto) instead of protobuf's
   default pool. Triton's own client library, tritonclient, registers
   messages of the same `inference` package and file names in the default
   pool, and protobuf refuses a second, different definition there. With a
   private pool, netspec's compiler, its server and tritonclient can be
   imported in one process (tests, notebooks, `netspec infer`). The wire
   format does not depend on the pool.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
POOL_PACKAGE = "compiler.protocol.generated"
# proto file -> the package its generated modules go into
HOMES = {"model_config.proto": POOL_PACKAGE, "grpc_service.proto": "service.generated"}

_INITS = {
    POOL_PACKAGE: '''"""Generated code for protos/model_config.proto (see service/protos_gen.py). Do not edit."""

from google.protobuf import descriptor_pool

# Private descriptor pool of every generated netspec module; see service/protos_gen.py.
POOL = descriptor_pool.DescriptorPool()
''',
    "service.generated": f'''"""Generated gRPC code for protos/grpc_service.proto (see service/protos_gen.py). Do not edit."""

from {POOL_PACKAGE} import POOL  # the one pool: grpc_service.proto imports model_config.proto

__all__ = ["POOL"]
''',
}


def folder(package: str) -> Path:
    return ROOT.joinpath(*package.split("."))


def _home_of_module(module: str) -> str:
    """The package of generated module `model_config_pb2`."""
    return HOMES[module.removesuffix("_pb2_grpc").removesuffix("_pb2") + ".proto"]


def _postprocess(name: str, package: str, text: str) -> str:
    def source(imported: str) -> str:
        home = _home_of_module(imported)
        return "." if home == package else home

    text = re.sub(r"^import (\w+_pb2) as (\w+)$", lambda m: f"from {source(m[1])} import {m[1]} as {m[2]}",
                  text, flags=re.M)
    if name.endswith("_pb2.py"):
        pool = "." if package == POOL_PACKAGE else POOL_PACKAGE
        text = text.replace(
            "from google.protobuf import descriptor_pool as _descriptor_pool\n",
            "from google.protobuf import descriptor_pool as _descriptor_pool\n"
            f"from {pool} import POOL as _POOL\n",
        )
        text = text.replace("_descriptor_pool.Default().AddSerializedFile(", "_POOL.AddSerializedFile(")
    return text


def generate() -> dict[Path, str]:
    """Run protoc and return {path relative to the checkout: post-processed source}."""
    from grpc_tools import protoc
    import grpc_tools

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={tmp}", f"--grpc_python_out={tmp}"]
        args += [str(PROTO_DIR / p) for p in HOMES]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed on protos/")
        files = {}
        for path in sorted(Path(tmp).glob("*.py")):
            if path.name == "model_config_pb2_grpc.py":
                continue  # no service in model_config.proto: an empty module
            package = _home_of_module(path.stem)
            out = folder(package).relative_to(ROOT) / path.name
            files[out] = _postprocess(path.name, package, path.read_text())
    for package, text in _INITS.items():
        files[folder(package).relative_to(ROOT) / "__init__.py"] = text
    return files


def stale_files(files: dict[Path, str]) -> list[str]:
    """Paths of generated files that differ from, or are missing in, the checkout."""
    stale = []
    for relative, text in files.items():
        path = ROOT / relative
        if not path.exists() or path.read_text() != text:
            stale.append(str(relative))
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the generated modules are up to date")
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        stale = stale_files(files)
        if stale:
            print(f"stale generated code ({', '.join(stale)}): run python -m service.protos_gen", file=sys.stderr)
            return 1
        return 0
    for relative, text in files.items():
        (ROOT / relative).parent.mkdir(exist_ok=True)
        (ROOT / relative).write_text(text)
    print(f"wrote {len(files)} files: {', '.join(sorted({str(p.parent) for p in files}))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
