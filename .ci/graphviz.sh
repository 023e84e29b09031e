#!/bin/sh
# Graphviz's `dot`, which `netspec graph` uses to render .svg and .png
# (tests/test_graph_render.py). Idempotent; run as root on Debian.
set -eu
if command -v dot >/dev/null 2>&1; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends graphviz || {
    apt-get update
    apt-get install -y --no-install-recommends graphviz
}
dot -V
