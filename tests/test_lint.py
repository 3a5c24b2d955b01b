"""The lint settings of setup.cfg (flake8 and isort, 120 columns) hold for the whole repository, so CI checks them."""
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.parametrize('command', [['flake8'], ['isort', '--check-only', '--diff']], ids=['flake8', 'isort'])
def test_repository_is_lint_clean(command):
    proc = subprocess.run([sys.executable, '-m', *command, '.'], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f'{" ".join(command)} found problems:\n{(proc.stdout + proc.stderr)[-6000:]}'
