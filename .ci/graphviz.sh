#!/bin/sh
# Graphviz's `dot`, which `netspec graph` uses to render .svg and .png
# (tests/test_graph_render.py), with its recommended fonts. Idempotent;
# Debian, as root (or with sudo).
set -eu
if command -v dot >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y graphviz || {
    $SUDO apt-get update
    $SUDO apt-get install -y graphviz
}
dot -V
