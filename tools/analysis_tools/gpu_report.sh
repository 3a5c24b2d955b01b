#!/usr/bin/env bash
# The project's GPU report in one run of about 8 minutes on one H100/H200: tests/test_cuda.py, then the README's GPU
# table (T and S sizes with their Swin/ConvNeXt peers, bf16, batch 128, 224², inference and training, eager, with
# MFU) and the T sizes compiled (torch.compile's default mode), each table as Markdown and CSV.
#
#   bash tools/analysis_tools/gpu_report.sh prepare          # here, with PyPI: the pure-Python OpenMMLab packages
#                                                            # into .gpu_site/ (ignored by git; carry it)
#   bash tools/analysis_tools/gpu_report.sh run OUT_DIR      # on the GPU machine, with its own torch
#   bash tools/analysis_tools/gpu_report.sh run OUT_DIR --dry-run   # on a CPU: every step's real command line on
#                                                            # a tiny CPU setting, so that a GPU run is not wasted
#
# Each step has its own time limit (GPU_REPORT_STEP_S, default 120 s, so four steps stay inside 8 minutes) and writes
# its output at once, so a run cut short keeps what it measured. OUT_DIR gets report.md (everything), and one .log and
# .csv per step. GPU_REPORT_STEPS (default "test_cuda t_eager s_eager t_compiled") and GPU_REPORT_T_MODELS /
# GPU_REPORT_S_MODELS (space-separated targets) narrow a run; the suite's dry-run test uses them to stay short.
set -uo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
site="$repo_root/.gpu_site"
python_bin="${PYTHON:-python3}"

prepare() (
  set -e
  # mmcv without its compiled ops is pure Python (these backbones use none of the ops), and so are the others:
  # they import on the GPU machine's own torch and Python. numpy, opencv, pyyaml and rich are already there.
  rm -rf "$site" && mkdir -p "$site"
  local pip=("$python_bin" -m pip --disable-pip-version-check -q)
  "${pip[@]}" install --no-deps --target "$site" \
    mmengine==0.10.7 mmpretrain==1.2.0 mmdet==3.3.0 mmsegmentation==1.2.2 addict yapf termcolor
  # built without ops, mmcv names itself mmcv-lite, which a requirement 'mmcv==2.1.0' refuses: build the sdist's file
  local sdist
  sdist="$(mktemp -d)"
  "${pip[@]}" download --no-deps --no-binary :all: -d "$sdist" mmcv==2.1.0
  MMCV_WITH_OPS=0 "${pip[@]}" install --no-deps --no-build-isolation --target "$site" "$sdist"/mmcv-2.1.0.tar.gz
  rm -rf "$sdist"
  # the codebases' packaged configs (.mim) and test folders are not imported; the device carries 64 MiB in all
  rm -rf "$site"/bin "$site"/*.dist-info/RECORD "$site"/*/.mim "$site"/tests "$site"/yapftests
  "$python_bin" -c "import sys; sys.path.insert(0, '$site'); import mmcv; assert mmcv.__version__ == '2.1.0'"
  echo "[gpu_report] prepared $site ($(du -sm "$site" | cut -f1) MiB); carry .gpu_site to the GPU machine"
)

run() {
  local out="$1" dry="${2:-}"
  mkdir -p "$out"
  export PYTHONPATH="$site:$repo_root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  local step_s="${GPU_REPORT_STEP_S:-120}"
  local steps=" ${GPU_REPORT_STEPS:-test_cuda t_eager s_eager t_compiled} "
  local device=(--device cuda --precision bf16 --batch-size 128)
  local timing=(--warmup 5 --repeats 12)
  if [ "$dry" = "--dry-run" ]; then
    device=(--device cpu --precision bf16 --batch-size 2 --shape 64 --isolation none)  # BN trains on >1 value
    timing=(--warmup 0 --repeats 1)
    step_s=600
  elif [ -n "$dry" ]; then
    echo "gpu_report.sh: unknown option '$dry' (expected --dry-run)" >&2; return 2
  fi
  local report="$out/report.md"
  {
    echo "# GPU report, commit $(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo
    "$python_bin" -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device")'
  } >"$report"

  local failed=0
  step() {  # step NAME COMMAND...: time-limited, output kept in OUT/NAME.log and appended to the report
    local name="$1"; shift
    case "$steps" in *" $name "*) ;; *) echo "[gpu_report] $name: not asked for (GPU_REPORT_STEPS)" | tee -a "$report"; return 0 ;; esac
    echo "[gpu_report] $name: $*" | tee -a "$report"
    local start=$SECONDS
    timeout "$step_s" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "[gpu_report] $name: exit $rc after $((SECONDS - start)) s" | tee -a "$report"
    grep -E '^\||passed|failed|skipped|error' "$out/$name.log" >>"$report" || true
    echo >>"$report"
    [ "$rc" = 0 ] || failed=1
  }

  if [ "$dry" = "--dry-run" ]; then
    echo "[gpu_report] dry run: tests/test_cuda.py not run (no GPU)" | tee -a "$report"
  else
    step test_cuda "$python_bin" -m pytest "$repo_root/tests/test_cuda.py" -q -p no:cacheprovider
  fi
  local bench=("$python_bin" "$repo_root/tools/analysis_tools/benchmark.py")
  local t_models s_models
  read -r -a t_models <<<"${GPU_REPORT_T_MODELS:-groupmixformer-t glnet-4g maformer-s dgt-t}"
  read -r -a s_models <<<"${GPU_REPORT_S_MODELS:-groupmixformer-s glnet-9g maformer-b dgt-s}"
  step t_eager "${bench[@]}" "${t_models[@]}" --peers swin-t convnext-t --mode infer train "${device[@]}" \
    "${timing[@]}" --csv "$out/t_eager.csv"
  step s_eager "${bench[@]}" "${s_models[@]}" --peers swin-s convnext-s --mode infer train "${device[@]}" \
    "${timing[@]}" --csv "$out/s_eager.csv"
  if [ "$dry" = "--dry-run" ]; then
    # inductor's C++ build of every model would take the CPU many minutes: one small model checks the options
    step t_compiled "${bench[@]}" groupmixformer-m --peers none --mode train --compile "${device[@]}" \
      "${timing[@]}" --csv "$out/t_compiled.csv"
  else
    step t_compiled "${bench[@]}" "${t_models[@]}" --peers swin-t convnext-t --mode train infer --compile \
      "${device[@]}" "${timing[@]}" --csv "$out/t_compiled.csv"
  fi
  echo "[gpu_report] report: $report"
  return "$failed"
}

case "${1:-}" in
  prepare) prepare ;;
  run) [ $# -ge 2 ] || { echo "usage: gpu_report.sh run OUT_DIR [--dry-run]" >&2; exit 2; }; run "$2" "${3:-}" ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
