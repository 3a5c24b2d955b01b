"""The GPU report script's dry run on the CPU: its benchmark command lines parse, run and write their tables, and a
failing step makes the whole run fail, so that the one GPU run a session may get is not wasted on a typo."""
import csv
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / 'tools' / 'analysis_tools' / 'gpu_report.sh'


def run_report(out, *args, **env):
    full_env = dict(os.environ, PYTHON=sys.executable, **env)
    return subprocess.run(['bash', str(SCRIPT), 'run', str(out), *args], env=full_env, capture_output=True,
                          text=True, timeout=300)


def test_dry_run_writes_the_eager_table_with_its_peers(tmp_path):
    result = run_report(tmp_path, '--dry-run', GPU_REPORT_STEPS='t_eager', GPU_REPORT_T_MODELS='groupmixformer-m')
    assert result.returncode == 0, result.stdout + result.stderr
    with open(tmp_path / 't_eager.csv') as f:
        rows = list(csv.DictReader(f))
    assert {(r['target'], r['mode']) for r in rows} == {
        (m, mode) for m in ('groupmixformer-m', 'swin-t', 'convnext-t') for mode in ('infer', 'train')}
    report = (tmp_path / 'report.md').read_text()
    assert 's_eager: not asked for' in report and 't_eager: exit 0' in report
    assert '| groupmixformer-m | train |' in report


def test_a_failing_step_fails_the_run_and_later_steps_still_run(tmp_path):
    result = run_report(tmp_path, '--dry-run', GPU_REPORT_STEPS='t_eager s_eager', GPU_REPORT_T_MODELS='no-such-model',
                        GPU_REPORT_S_MODELS='groupmixformer-m')
    assert result.returncode != 0
    report = (tmp_path / 'report.md').read_text()
    assert 't_eager: exit 0' not in report and 's_eager: exit 0' in report
    assert 'no-such-model' in (tmp_path / 't_eager.log').read_text()


def test_unknown_option_is_refused(tmp_path):
    result = run_report(tmp_path, '--dryrun')
    assert result.returncode == 2 and "unknown option '--dryrun'" in result.stderr
