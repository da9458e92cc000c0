#!/usr/bin/env bash
# Resolve the README's accelerator install commands for the machines they are meant for, without
# those machines: the CUDA command for the H200 image's Python (3.12, manylinux x86-64) and the TPU
# command for the venv scripts/tpu_pod.sh makes (Python 3.12). Needs only the package registry.
# usage: scripts/check_install.sh       (prints the resolved jax / plugin versions)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/uv" && "$tmp/uv/bin/pip" install -q uv
deps=$(python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))")
for extra in cuda13 tpu; do
  echo "== jax[$extra] with the project's dependencies, Python 3.12, x86_64 manylinux_2_35 (Ubuntu 22.04 and later)"
  printf '%s\njax[%s]\n' "$deps" "$extra" | "$tmp/uv/bin/python" -m uv pip compile -q --python-version 3.12 \
    --python-platform x86_64-manylinux_2_35 - | grep -E '^(jax|jaxlib|jax-cuda|libtpu|flax|orbax)'
done
