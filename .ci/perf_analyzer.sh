#!/usr/bin/env bash
# Installs Triton's perf_analyzer for the service tests, idempotently.
# Needs root on Debian/Ubuntu with PyPI and the Debian archive reachable; no GPU.
#
#   . .ci/perf_analyzer.sh     # sourced: also exports LD_LIBRARY_PATH
#   .ci/perf_analyzer.sh       # run: installs, and prints the export line to use
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

if ! perf_analyzer --version >/dev/null 2>&1; then
    echo "perf_analyzer is installed but does not run; LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
    perf_analyzer --version  # shows the loader error
    exit 1
fi
echo "perf_analyzer ready; export LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
