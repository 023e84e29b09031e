"""Generate the Python gRPC code for protos/*.proto into service/generated/.

    python -m service.protos_gen          # write service/generated/*.py
    python -m service.protos_gen --check  # exit 1 if the committed files are stale

The generated modules are committed (so an install needs no protoc) and this
module is the one command that makes them. Two edits are applied to protoc's
output, both mechanical:

1. Imports become package-relative (`from . import model_config_pb2`), since
   protoc writes top-level imports.
2. The descriptors are registered in a private pool (`service.generated.POOL`)
   instead of protobuf's default pool. Triton's own client library,
   tritonclient, registers messages of the same `inference` package and file
   names in the default pool, and protobuf refuses a second, different
   definition there. With a private pool, netspec's server and tritonclient
   can be imported in one process (tests, notebooks, `netspec infer`). The
   wire format does not depend on the pool.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos"
OUT_DIR = Path(__file__).resolve().parent / "generated"
PROTOS = ("model_config.proto", "grpc_service.proto")

_INIT = '''"""Generated gRPC code for protos/ (see service/protos_gen.py). Do not edit."""

from google.protobuf import descriptor_pool

# Private descriptor pool shared by the generated modules; see protos_gen.py.
POOL = descriptor_pool.DescriptorPool()
'''


def _postprocess(name: str, text: str) -> str:
    text = re.sub(r"^import (\w+_pb2) as (\w+)$", r"from . import \1 as \2", text, flags=re.M)
    if name.endswith("_pb2.py"):
        text = text.replace(
            "from google.protobuf import descriptor_pool as _descriptor_pool\n",
            "from google.protobuf import descriptor_pool as _descriptor_pool\n"
            "from . import POOL as _POOL\n",
        )
        text = text.replace("_descriptor_pool.Default().AddSerializedFile(", "_POOL.AddSerializedFile(")
    return text


def generate() -> dict[str, str]:
    """Run protoc and return {file name: post-processed source}."""
    from grpc_tools import protoc
    import grpc_tools

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={tmp}", f"--grpc_python_out={tmp}"]
        args += [str(PROTO_DIR / p) for p in PROTOS]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed on protos/")
        files = {}
        for path in sorted(Path(tmp).glob("*.py")):
            if path.name == "model_config_pb2_grpc.py":
                continue  # no service in model_config.proto: an empty module
            files[path.name] = _postprocess(path.name, path.read_text())
    files["__init__.py"] = _INIT
    return files


def stale_files(files: dict[str, str]) -> list[str]:
    """Names of generated files that differ from, or are missing in, OUT_DIR."""
    stale = []
    for name, text in files.items():
        path = OUT_DIR / name
        if not path.exists() or path.read_text() != text:
            stale.append(name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that service/generated/ is up to date")
    args = parser.parse_args(argv)
    files = generate()
    if args.check:
        stale = stale_files(files)
        if stale:
            print(f"service/generated/ is stale ({', '.join(stale)}): run python -m service.protos_gen", file=sys.stderr)
            return 1
        return 0
    OUT_DIR.mkdir(exist_ok=True)
    for name, text in files.items():
        (OUT_DIR / name).write_text(text)
    print(f"wrote {len(files)} files to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
