"""The import contracts of pyproject.toml ([tool.importlinter]), checked with import-linter.

The repository must keep every contract, and each contract must be able to fail: a
copy of the tree with one forbidden import added breaks exactly that contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vlanet_tf", "data_prep", "export", "benchmarks")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
         "sys.exit(lint_imports_command())", "--config", str(root / "pyproject.toml"),
         "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_repository_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(REPO / "pyproject.toml", root)
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    return root


# (file to edit, import added at its end, the contract that must break)
VIOLATIONS = [
    ("vlanet_tf/training.py", "from vlanet_tf import experiment", "No import cycles"),
    ("vlanet_tf/text.py", "import data_prep.word_vectors", "never imports the offline tools"),
    ("vlanet_tf/evaluation/scoring.py", "import vlanet_tf.model", "Evaluation is standalone"),
    ("export/onnx.py", "import export.tflite", "export imports no main"),
    ("vlanet_tf/spans.py", "from absl import flags", "Only mains read flags"),
    ("vlanet_tf/inference.py", "from vlanet_tf import flags", "Only mains read flags"),
]


@pytest.mark.parametrize("path, line, contract", VIOLATIONS)
def test_each_contract_catches_its_violation(tree_copy, path, line, contract):
    target = tree_copy / path
    original = target.read_text()
    target.write_text(original + f"\n{line}\n")
    try:
        result = lint_imports(tree_copy)
    finally:
        target.write_text(original)
    assert result.returncode != 0
    broken = [l for l in result.stdout.splitlines() if l.rstrip().endswith("BROKEN")]
    assert len(broken) == 1 and contract in broken[0], result.stdout[-3000:]
