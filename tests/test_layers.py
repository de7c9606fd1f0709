"""The package's layer contract (import-linter, configured in pyproject.toml): every module imports
only from the layers below it, so no import cycle can come back."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package under `root` with the project's contract (static analysis:
    nothing is imported)."""
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.path.insert(0, {str(root)!r}); "
            f"sys.exit(lint_imports(config_filename={str(PROJECT_ROOT / 'pyproject.toml')!r}, no_cache=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_layers():
    result = lint_imports(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_catches_a_lower_layer_importing_a_higher_one(tmp_path):
    shutil.copytree(PROJECT_ROOT / "helpers", tmp_path / "helpers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    keywords = tmp_path / "helpers" / "wordnet" / "keywords.py"
    keywords.write_text(keywords.read_text(encoding="utf-8") + "\nfrom helpers.predict import predictors\n",
                        encoding="utf-8")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "helpers.wordnet is not allowed to import helpers.predict" in result.stdout
    assert "helpers.wordnet.keywords -> helpers.predict.predictors" in result.stdout
