"""Dependency direction (molrg pure; service never imports torch/molrg/workers), static checks (ruff, mypy)
and CI wiring."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY_OR_INFRA = ("fastapi", "sqlalchemy", "celery", "kombu", "redis", "psycopg", "pydantic_settings",
                  "uvicorn", "starlette", "db", "service", "workers")


def _modules_after(statement: str, full: bool = False) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return {line if full else line.split(".")[0] for line in out.stdout.split()}


def test_import_molrg_pulls_in_no_web_db_or_queue_library() -> None:
    loaded = _modules_after("import molrg; molrg.MoLRGDiffusion; molrg.make_molrg; molrg.recovery_error")
    assert not loaded & set(HEAVY_OR_INFRA), loaded & set(HEAVY_OR_INFRA)


def forbidden_in_api(modules: set[str]) -> set[str]:
    """torch, workers, and any of molrg but its torch-free declaration module (molrg.spec)."""
    return {m for m in modules if m.split(".")[0] in ("torch", "workers")
            or (m.split(".")[0] == "molrg" and m != "molrg" and m.split(".")[:2] != ["molrg", "spec"])}


def test_api_process_never_imports_torch_or_molrg() -> None:
    loaded = _modules_after("import service.main; service.main.create_app", full=True)
    assert "molrg.spec" in loaded  # the one declaration of the job contracts
    assert not forbidden_in_api(loaded), forbidden_in_api(loaded)


def test_import_linter_contracts_hold() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("import-linter not installed")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _tool(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"{name} not installed (pip install -e .[dev])")
    return exe


def test_ruff_is_clean() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "."], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    """The packages type-check ([tool.mypy] in pyproject.toml: check_untyped_defs, pydantic plugin)."""
    proc = subprocess.run([_tool("mypy")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test" in ci
    assert "bash scripts/test" in readme and "bash scripts/up" in readme
    assert 'pip install -q "torch==2.13.0"' in (ROOT / "scripts" / "setup").read_text()
