"""The browser client's build: type-checked, unit-tested, and reproducible.

The built page ships inside the Python package (so `pip install .` needs no
npm); these tests prove the committed files are exactly what `npm ci && npm
run build` makes from the committed sources and package-lock.json, in a
scratch copy of the npm project.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "bridgehost" / "web" / "client"
STATIC = ROOT / "bridgehost" / "web" / "static" / "chat"
SOURCES = ["package.json", "package-lock.json", "tsconfig.json", "build.mjs", "src", "test"]

pytestmark = pytest.mark.slow


def _npm(cwd: Path, *args: str) -> str:
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed to build the chat page (Debian/NodeSource nodejs)"
    done = subprocess.run(
        [npm, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, f"npm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the npm project with its locked dependencies installed by `npm ci`."""
    work = tmp_path_factory.mktemp("chat-client")
    for name in SOURCES:
        src = CLIENT / name
        if src.is_dir():
            shutil.copytree(src, work / name)
        else:
            shutil.copy2(src, work / name)
    _npm(work, "ci", "--no-audit", "--no-fund")
    return work


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_build_is_reproducible_and_committed(scratch: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    _npm(scratch, "run", "build", "--", "--outdir", str(first))
    _npm(scratch, "run", "build", "--", "--outdir", str(second))
    assert _tree(first) == _tree(second)
    assert _tree(first) == _tree(STATIC), "rebuild bridgehost/web/static/chat: npm run build"
    for name in _tree(first):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
        assert filecmp.cmp(first / name, STATIC / name, shallow=False), (
            f"{name} differs from the committed build: run `npm ci && npm run build` in {CLIENT}"
        )
    index = (STATIC / "index.html").read_text()
    assert "<script>" not in index and "http" not in index, "no inline script, nothing external"


def test_typecheck(scratch: Path) -> None:
    _npm(scratch, "run", "typecheck")


def test_client_unit_tests(scratch: Path) -> None:
    out = _npm(scratch, "test")
    assert "# fail 0" in out and "# pass " in out, out
