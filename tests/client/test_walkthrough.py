"""README's path for a new user: ``scripts/link-cli`` (run by scripts/setup, so by scripts/up) puts ``molrg`` on
the PATH, and ``bash docs/walkthrough.sh`` as written succeeds from a shell without the venv on its PATH,
writes its figures to ./molrg-walkthrough (ignored by git), and leaves ``git status`` as it was."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack

VENV_MOLRG = ROOT / ".venv" / "bin" / "molrg"
BASE_PATH = "/usr/bin:/bin"  # no .venv/bin, no ~/.local/bin


def _link_cli(home: Path, path: str, dirs: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": path, "MOLRG_BIN_DIRS": dirs}
    return subprocess.run(["bash", str(ROOT / "scripts" / "link-cli")], env=env, capture_output=True, text=True,
                          timeout=30)


@pytest.mark.skipif(not VENV_MOLRG.exists(), reason="needs the .venv that scripts/setup creates")
def test_link_cli_puts_molrg_on_the_path(tmp_path: Path) -> None:
    local, system = tmp_path / ".local" / "bin", tmp_path / "usr-local-bin"
    system.mkdir()
    path = f"{local}:{system}:{BASE_PATH}"
    done = _link_cli(tmp_path, path, f"{local} {system}")
    assert done.returncode == 0, done.stderr
    assert (local / "molrg").resolve() == VENV_MOLRG.resolve() and f"{local / 'molrg'} -> " in done.stdout
    found = subprocess.run(["bash", "-c", "command -v molrg && molrg --help"], env={"PATH": path, "HOME": str(tmp_path)},
                           capture_output=True, text=True, timeout=60)
    assert found.returncode == 0 and found.stdout.startswith(str(local / "molrg")), found.stderr
    assert "datasets" in found.stdout and "sample-sets" in found.stdout
    assert _link_cli(tmp_path, path, f"{local} {system}").returncode == 0  # again: replaces its own link

    # a folder not on the PATH is skipped; a foreign `molrg` is never replaced
    other = tmp_path / "other"
    other.mkdir()
    (other / "molrg").write_text("#!/bin/sh\necho foreign\n")
    done = _link_cli(tmp_path, f"{other}:{system}:{BASE_PATH}", f"{local.parent / 'nope'} {other} {system}")
    assert (other / "molrg").read_text().endswith("foreign\n") and (system / "molrg").is_symlink()
    assert "not ours" in done.stderr

    # nowhere to link: print how to put .venv/bin on the PATH
    done = _link_cli(tmp_path, BASE_PATH, f"{tmp_path / 'absent'}")
    assert done.returncode == 0 and f'export PATH="{ROOT}/.venv/bin:$PATH"' in done.stdout


def _status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_walkthrough_as_written(embedded_stack: Stack, api_key: str) -> None:
    out = ROOT / "molrg-walkthrough"
    existed = out.exists()
    before = _status()
    tracked_img = {p: p.read_bytes() for p in (ROOT / "docs" / "img").glob("*.png")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOLRG_")}
    env.update({"PATH": BASE_PATH, "MOLRG_URL": embedded_stack.url, "MOLRG_API_KEY": api_key})
    try:
        run = subprocess.run(["bash", "docs/walkthrough.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=1100)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        for name in ("walk_synthetic_loss", "walk_synthetic_projection", "walk_synthetic_jacobian",
                     "walk_digits_grid", "walk_digits_editing"):
            assert (out / f"{name}.png").stat().st_size > 1000, name
        assert "\r" not in run.stderr and "succeeded  100.0%" in run.stderr
        assert "memorisation.generalisation_score" in run.stdout  # sample-sets show prints the diagnostics
        # the figures are not tracked files, and their folder is ignored (on a shared working tree other
        # edits may come and go meanwhile: there only the walkthrough's own paths are checked)
        after = _status()
        if os.environ.get("CI"):
            assert after == before
        new = set(after.splitlines()) - set(before.splitlines())
        assert not [e for e in new if "molrg-walkthrough" in e or "docs/" in e], new
        assert {p: p.read_bytes() for p in (ROOT / "docs" / "img").glob("*.png")} == tracked_img
    finally:
        if not existed:
            shutil.rmtree(out, ignore_errors=True)
