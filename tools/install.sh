#!/usr/bin/env bash
# Sets up everything mixformer_mm needs on a fresh machine, then installs the package in editable mode.
#
#   bash tools/install.sh                 # creates ./.venv (or reuses it) and installs into it
#   bash tools/install.sh --use-active    # installs into the python on PATH (an env you already activated)
#
# Environment knobs:
#   MIXFORMER_VENV      where the virtual environment lives (default: <repo>/.venv)
#   MIXFORMER_TORCH     pip requirement(s) for PyTorch, e.g. "torch==2.9.1 torchvision==0.24.1". Without it a torch
#                       that is already importable is kept (bring your own CUDA build) and otherwise
#                       "torch==2.14.1 torchvision==0.29.1" is installed.
#   MIXFORMER_CACHE     where the built mmcv wheel is cached (default: ~/.cache/mixformer_mm)
#   MAX_JOBS            parallel compile jobs for the mmcv ops (default: number of cores)
#   FORCE_CUDA=1        build mmcv's CUDA ops even when no GPU is visible (needs nvcc)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
use_active=0
for arg in "$@"; do
  case "$arg" in
    --use-active) use_active=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (expected --use-active)" >&2; exit 2 ;;
  esac
done

say() { printf '[install] %s\n' "$*"; }

if [ "$use_active" = 1 ]; then
  python_bin="$(command -v python)"
else
  venv="${MIXFORMER_VENV:-$repo_root/.venv}"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating virtual environment $venv"
    python3 -m venv "$venv"
  fi
  python_bin="$venv/bin/python"
fi
pip_install() { "$python_bin" -m pip install --disable-pip-version-check "$@"; }
say "python: $python_bin ($("$python_bin" -c 'import sys; print(sys.version.split()[0])'))"

# --- PyTorch ----------------------------------------------------------------------------------------------
if [ -n "${MIXFORMER_TORCH:-}" ]; then
  say "installing PyTorch as asked: $MIXFORMER_TORCH"
  # shellcheck disable=SC2086
  pip_install $MIXFORMER_TORCH
elif "$python_bin" -c 'import torch' 2>/dev/null; then
  say "keeping the installed torch $("$python_bin" -c 'import torch; print(torch.__version__)')"
  if ! "$python_bin" -c 'import torchvision' 2>/dev/null; then
    # torchvision 0.(minor+15) pairs with torch 2.minor
    tv="$("$python_bin" -c 'import torch; major, minor = torch.__version__.split(".")[:2]; print(f"0.{int(minor) + 15}.*")')"
    say "installing the matching torchvision==$tv"
    pip_install "torchvision==$tv"
  fi
else
  say "installing torch==2.14.1 torchvision==0.29.1"
  pip_install "torch==2.14.1" "torchvision==0.29.1"
fi

# --- mmcv 2.1.0 with compiled ops, built once and cached ---------------------------------------------------
mmcv_ok() { "$python_bin" -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.1.0"' 2>/dev/null; }
if mmcv_ok; then
  say "mmcv 2.1.0 with ops already installed"
else
  read -r torch_tag ops_flavour < <("$python_bin" - <<'PY'
import os, platform, sys, torch
cuda = torch.cuda.is_available() or os.environ.get('FORCE_CUDA') == '1'
print(f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__.replace('+', '_')}-{platform.machine()}",
      'cudaops' if cuda else 'cpuops')
PY
)
  cache_dir="${MIXFORMER_CACHE:-$HOME/.cache/mixformer_mm}/mmcv-2.1.0-$torch_tag-$ops_flavour"
  wheel="$(ls "$cache_dir"/mmcv-2.1.0-*.whl 2>/dev/null | head -n 1 || true)"
  if [ -z "$wheel" ]; then
    say "building mmcv 2.1.0 ($ops_flavour) from source; this takes 15-25 minutes on 2 cores and is cached in $cache_dir"
    # mmcv 2.1.0's setup.py needs setuptools < 70 to build; it is only kept for the build (see below).
    pip_install -q "setuptools<70" wheel ninja
    build_dir="$(mktemp -d)"
    trap 'rm -rf "$build_dir"' EXIT
    "$python_bin" -m pip download --disable-pip-version-check -q --no-deps --no-binary :all: \
      --no-build-isolation mmcv==2.1.0 -d "$build_dir"
    tar -xzf "$build_dir"/mmcv-2.1.0.tar.gz -C "$build_dir"
    src="$build_dir/mmcv-2.1.0"
    torch_include="$("$python_bin" -c 'from torch.utils.cpp_extension import include_paths; print(include_paths()[0])')"
    if grep -rqs "C++20 or later compatible compiler is required" "$torch_include/c10" "$torch_include/ATen"; then
      # This torch's headers refuse anything older than C++20, while mmcv 2.1.0 hard-codes c++14/c++17.
      say "this torch needs C++20: raising mmcv's -std flags to c++20"
      sed -i -e 's/c++14/c++20/g' -e 's/c++17/c++20/g' "$src/setup.py"
    fi
    (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$python_bin" -m pip wheel \
       --disable-pip-version-check --no-build-isolation --no-deps . -w "$build_dir/wheel")
    # only a complete wheel enters the cache
    mkdir -p "$cache_dir"
    built="$(ls "$build_dir"/wheel/mmcv-2.1.0-*.whl | head -n 1)"
    mv "$built" "$cache_dir/"
    wheel="$cache_dir/$(basename "$built")"
  else
    say "using the cached mmcv wheel $wheel"
  fi
  pip_install --no-deps "$wheel"
  # mmcv's own runtime requirements (its wheel was installed without them); mmcv imports mmengine
  pip_install -q addict packaging Pillow pyyaml yapf opencv-python "mmengine>=0.10.4,<0.11"
  mmcv_ok || { echo "install.sh: mmcv 2.1.0 was installed but 'import mmcv.ops' fails" >&2; exit 1; }
fi

# --- OpenMMLab codebases and this package ------------------------------------------------------------------
# mmengine resolves `mmdet::`/`mmseg::`/`mmpretrain::` config paths with pkg_resources, gone from setuptools >= 81;
# torch 2.14 itself asks for setuptools >= 77.0.3.
# Below 80 also because setuptools 80 turned `setup.py develop` into a PEP 660 editable install, which mim cannot
# locate (below); `wheel` lets pip run `setup.py develop` for the editable install (without it pip takes PEP 660).
pip_install -q "setuptools>=77.0.3,<80" wheel
# mmseg 1.2.2 imports ftfy and regex at import time without declaring them.
pip_install -q "mmengine>=0.10.4,<0.11" "mmdet==3.3.0" "mmsegmentation==1.2.2" "mmpretrain==1.2.0" \
  pycocotools ftfy regex "pytest>=7" "pytest-timeout" "flake8==7.5.0" "isort==5.13.2"
# openmim, for `mim search/train/test/run mixformer_mm ...`. Without its dependency opendatalab: that pulls in
# openxlab, which pins setuptools~=60.2 (torch 2.14 needs >= 77.0.3) and requests~=2.28; mim only calls
# opendatalab's `odl` command for `mim download --dataset`, which is therefore not set up here.
# (Its other dependencies first: pip's check of a later install would report the missing opendatalab as an error.)
pip_install -q click colorama model-index pandas requests rich tabulate
pip_install -q --no-deps "openmim==0.3.9"
# Editable, through `setup.py develop`: mim finds a codebase where its distribution says it lives, which an
# editable wheel (PEP 660) would place in site-packages; setup.py links configs/, tools/, demo/ and
# model-index.yml into mixformer_mm/.mim/, where mim looks for them.
pip_install -q --no-deps --no-build-isolation -e "$repo_root"

"$python_bin" - <<'PY'
import mmcv, mmdet, mmengine, mmpretrain, mmseg, torch, torchvision, numpy
import mixformer_mm  # noqa: F401
import os.path, sys
from mim.utils import get_installed_path
if not os.path.isfile(os.path.join(get_installed_path("mixformer_mm"), ".mim", "model-index.yml")):
    print("[install] warning: mim does not find mixformer_mm/.mim: the editable install is a PEP 660 one (pip "
          "without `wheel`, or setuptools >= 80), whose distribution lives in site-packages, away from the package; "
          "`mim ... mixformer_mm` needs an egg-link editable install (setuptools < 80 and wheel) or `pip install .`",
          file=sys.stderr)
print(f"[install] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, numpy {numpy.__version__}, "
      f"mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, "
      f"mmseg {mmseg.__version__}, mmpretrain {mmpretrain.__version__}")
PY
