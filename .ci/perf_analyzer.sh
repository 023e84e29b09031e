#!/usr/bin/env bash
# Installs Triton's perf_analyzer for the service tests, idempotently.
# Needs root on Debian/Ubuntu with PyPI and the Debian archive reachable; no GPU.
#
#   . .ci/perf_analyzer.sh     # sourced: also exports LD_LIBRARY_PATH
#   .ci/perf_analyzer.sh       # run: installs, and prints the export line to use
#
# Inside a virtual environment it also adds the export to the environment's
# activate script, so `. .venv/bin/activate` is all perf_analyzer needs.
#
# perf_analyzer (pip package perf-analyzer) links against libb64 (Debian
# libb64-0d) and libcudart (pip package nvidia-cuda-runtime-cu12), even when
# it only talks gRPC to a CPU server.
set -euo pipefail

PYTHON=${PYTHON:-python3}

if ! ldconfig -p | grep -q 'libb64\.so\.0d'; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends libb64-0d
fi

"$PYTHON" -m pip install --quiet --disable-pip-version-check perf-analyzer nvidia-cuda-runtime-cu12

cudart_dir=$("$PYTHON" -c 'import nvidia.cuda_runtime, os; print(os.path.join(list(nvidia.cuda_runtime.__path__)[0], "lib"))')
case ":${LD_LIBRARY_PATH:-}:" in
    *":$cudart_dir:"*) ;;
    *) export LD_LIBRARY_PATH="$cudart_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac

# The README's perf_analyzer line runs as written in the activated
# environment: its activate script sets the library path too (once).
activate="${VIRTUAL_ENV:-}/bin/activate"
if [ -n "${VIRTUAL_ENV:-}" ] && [ -f "$activate" ] && ! grep -q 'perf_analyzer needs libcudart' "$activate"; then
    cat >> "$activate" <<EOF

# perf_analyzer needs libcudart from the nvidia-cuda-runtime-cu12 package (written by .ci/perf_analyzer.sh)
case ":\${LD_LIBRARY_PATH:-}:" in
    *":$cudart_dir:"*) ;;
    *) export LD_LIBRARY_PATH="$cudart_dir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" ;;
esac
EOF
fi

if ! perf_analyzer --version >/dev/null 2>&1; then
    echo "perf_analyzer is installed but does not run; LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
    perf_analyzer --version  # shows the loader error
    exit 1
fi
echo "perf_analyzer ready; export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
