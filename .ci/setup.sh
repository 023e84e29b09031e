#!/usr/bin/env bash
# Installs everything the test suite needs into .venv (idempotent).
# torch 2.14.1 is the release torchvision 0.29.1 imports beside; any torch>=2.4
# works for netspec itself.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.14.1 torchvision==0.29.1
python -m pip install -q -e '.[test]'
for extra in .ci/perf_analyzer.sh .ci/graphviz.sh .ci/triton.sh; do
  if [ -f "$extra" ]; then bash "$extra"; fi
done
