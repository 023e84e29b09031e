#!/usr/bin/env bash
# Installs NVIDIA's Triton Inference Server for the export tests, CPU only,
# from the nvidia-pytriton wheel (Triton 2.51's tritonserver and Python
# backend), into .triton/ (its own virtual environment; TRITON_ENV=DIR, a
# path relative to the repository, installs elsewhere), idempotently:
#
#   .triton/tritonserver --model-repository DIR [tritonserver options]
#
# What the wrapper .triton/tritonserver sets up, and why:
# - LD_LIBRARY_PATH: the wheel's own libraries (nvidia_pytriton.libs), and
#   the folder of this Python's libpython3.X.so: the backend's stub embeds
#   Python and would otherwise load the distribution's libpython, of another
#   build, and fail inside multiprocessing.
# - PATH: .triton/bin first. The stub runs Python in isolated mode (it
#   ignores PYTHONPATH) and takes its sys.path from the first python3 on
#   PATH, so it sees this environment's packages, whose numpy is 1.x: with
#   numpy 2 a Python-backend model runs but its outputs come back empty.
# - --backend-directory .triton/backends, where python/ holds the backend
#   and the stub built for this Python version.
# torch is not installed here: an exported model finds it through
# `netspec export --python-site` (the tests point it at .venv's torch).
#
# When the wheel cannot be installed (no wheel for this platform or Python,
# no shared libpython), this writes the reason to .triton/UNAVAILABLE and
# exits 0: the tests that need Triton skip with that reason.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
ENV=${TRITON_ENV:-.triton}
PYTRITON_VERSION=0.7.0

unavailable() {
    mkdir -p "$ENV"
    echo "$*" > "$ENV/UNAVAILABLE"
    echo "Triton not installed: $*" >&2
    exit 0
}

if [ -x "$ENV/tritonserver" ] && [ ! -e "$ENV/UNAVAILABLE" ]; then
    echo "Triton ready: $ENV/tritonserver"
    exit 0
fi
rm -f "$ENV/UNAVAILABLE"

[ -x "$ENV/bin/python" ] || "$PYTHON" -m venv "$ENV" || unavailable "cannot create a virtual environment with $PYTHON"
"$ENV/bin/python" -m pip install --quiet --disable-pip-version-check "nvidia-pytriton==$PYTRITON_VERSION" "numpy<2" \
    || unavailable "pip cannot install nvidia-pytriton==$PYTRITON_VERSION for $("$PYTHON" -V 2>&1) on $(uname -m)"

read -r site libdir pyver < <("$ENV/bin/python" -c '
import sysconfig, sys
print(sysconfig.get_paths()["purelib"], sysconfig.get_config_var("LIBDIR"), f"{sys.version_info[0]}.{sys.version_info[1]}")')
server="$site/pytriton/tritonserver"
stub="$server/python_backend_stubs/$pyver/triton_python_backend_stub"
[ -x "$server/bin/tritonserver" ] || unavailable "the wheel has no $server/bin/tritonserver"
[ -x "$stub" ] || unavailable "nvidia-pytriton $PYTRITON_VERSION has no Python backend stub for Python $pyver"
ls "$libdir"/libpython"$pyver"*.so* >/dev/null 2>&1 \
    || unavailable "$PYTHON has no shared libpython$pyver in $libdir (the Python backend embeds it)"

rm -rf "$ENV/backends"
mkdir -p "$ENV/backends"
cp -r "$server/backends/python" "$ENV/backends/python"
cp "$stub" "$ENV/backends/python/triton_python_backend_stub"

root=$(pwd)
cat > "$ENV/tritonserver" <<EOF
#!/usr/bin/env bash
# Triton's server from nvidia-pytriton $PYTRITON_VERSION, set up by .ci/triton.sh (see there why).
export LD_LIBRARY_PATH="$site/nvidia_pytriton.libs:$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PATH="$root/$ENV/bin:\$PATH"
exec "$server/bin/tritonserver" --backend-directory "$root/$ENV/backends" "\$@"
EOF
chmod +x "$ENV/tritonserver"
echo "Triton ready: $ENV/tritonserver"
