"""The import contract in pyproject.toml ([tool.importlinter]) holds, and catches a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e '.[dev]')")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), str(tree / "pyproject.toml"), "--no-cache"], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


def _copy_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "pipeline", tree / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_project_keeps_its_import_contracts(tmp_path):
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_database_in_transcription_breaks_the_contract(tmp_path):
    tree = _copy_tree(tmp_path)
    guards = tree / "pipeline" / "speech" / "loop_guards.py"
    guards.write_text(guards.read_text() + "\nfrom pipeline.store import Call  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "1 broken" in result.stdout
    assert "pipeline.speech.loop_guards -> pipeline.store" in result.stdout


def test_a_stage_importing_the_cli_breaks_the_layers(tmp_path):
    tree = _copy_tree(tmp_path)
    score = tree / "pipeline" / "risk" / "churn_rate.py"
    score.write_text(score.read_text() + "\nimport pipeline.reminders.plan  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "1 broken" in result.stdout and "pipeline.risk.churn_rate -> pipeline.reminders.plan" in result.stdout
