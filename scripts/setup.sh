#!/usr/bin/env bash
# Install everything smlmspine needs on a fresh Debian machine with Python 3.11:
# the system libraries Open3D loads (libusb-1.0-0, libgomp1, libgl1), a virtual
# environment in .venv, the package with its test and docs extras (editable), and the
# package's numba kernels compiled into their caches (python -m smlmspine._warm).
# Idempotent: a second run only checks. `--with-browser` also installs Debian's chromium,
# which the slow test of report.html (tests/report, `pytest -m slow`) renders it in.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi

need_pkgs=()
pkgs=(libusb-1.0-0 libgomp1 libgl1)
if [ "${1:-}" = "--with-browser" ]; then pkgs+=(chromium); fi
for pkg in "${pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if ! "$PY" -c "import venv, ensurepip" >/dev/null 2>&1; then
  need_pkgs+=("python3-venv")
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import smlmspine, open3d, pytest, hypothesis, pandas, skimage, sphinx, numpydoc, myst_parser" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.smlmspine-installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,docs]'
  touch .venv/.smlmspine-installed
fi
# compile the numba kernels of `smlmspine run` into their on-disk caches now, not on the
# first run (the README's main job spent most of its first run compiling); again when
# a source file changed since the last warm-up
stamp=.venv/.smlmspine-warm
if [ ! -f "$stamp" ] || [ -n "$(find smlmspine -name '*.py' -newer "$stamp" -print -quit)" ]; then
  echo "setup: compiling the numba kernels (python -m smlmspine._warm; 1-3 min, once)"
  .venv/bin/python -m smlmspine._warm --quiet
  touch "$stamp"
fi
echo "setup: ready ($(.venv/bin/python --version), smlmspine $(.venv/bin/python -c 'import smlmspine; print(smlmspine.__version__)'))"
