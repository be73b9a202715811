"""A mistake in severities.yml or approvals.yml is reported as playbooks' are: `file:line: where:
what`, by `icbot playbooks validate` and at start-up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.errors import ConfigError
from bot.domain.approvals import load_approvals
from bot.domain.policy import load_severity_policy

BUNDLED = Path(__file__).resolve().parent.parent / "playbooks"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(BUNDLED, tmp_path / "playbooks")
    return tmp_path / "playbooks"


def _break(path: Path, old: str, new: str) -> int:
    """Replace the first `old` in the file by `new`; returns the 1-based line it is on."""
    text = path.read_text()
    assert old in text
    line = text[: text.index(old)].count("\n") + 1
    path.write_text(text.replace(old, new, 1))
    return line


def test_a_typo_in_a_severity_key_is_reported_with_its_file_and_line(folder: Path) -> None:
    path = folder / "severities.yml"
    line = _break(path, "  status_every: 30m", "  status_evry: 30m")
    with pytest.raises(ConfigError) as raised:
        load_severity_policy(folder)
    assert str(raised.value) == f"{path}:{line}: sev2.status_evry: Extra inputs are not permitted"


def test_a_bad_duration_in_severities_yml_points_at_its_line(folder: Path) -> None:
    path = folder / "severities.yml"
    line = _break(path, "status_every: 30m", "status_every: 30 minutes")
    with pytest.raises(ConfigError, match=rf"^{path}:{line}: sev2\.status_every: '30 minutes'"):
        load_severity_policy(folder)


def test_an_unknown_escalation_contact_points_at_its_line(folder: Path) -> None:
    path = folder / "severities.yml"
    line = _break(path, "escalate_to: [eng-manager]", "escalate_to: [eng-manger]")
    with pytest.raises(ConfigError, match=rf"^{path}:{line}: sev2\.escalate_to names unknown"):
        load_severity_policy(folder)


def test_broken_yaml_in_severities_yml_says_where(folder: Path) -> None:
    path = folder / "severities.yml"
    line = _break(path, "  status_every: 30m", "  status_every: [30m")
    with pytest.raises(ConfigError, match=rf"^{path}:{line + 1}: invalid YAML"):
        load_severity_policy(folder)


def test_a_typo_in_approvals_yml_is_reported_with_its_file_and_line(folder: Path) -> None:
    path = folder / "approvals.yml"
    path.write_text("defaults:\n  approvers: [anyone]\n  required: many\n")
    with pytest.raises(ConfigError) as raised:
        load_approvals(folder)
    assert str(raised.value).startswith(f"{path}:3: defaults.required: "), str(raised.value)
    assert "\n" not in str(raised.value)


def test_playbooks_validate_prints_severities_errors_with_file_and_line(folder: Path) -> None:
    path = folder / "severities.yml"
    line = _break(path, "  status_every: 30m", "  status_evry: 30m")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "playbooks", "validate", str(folder)],
        env={**os.environ, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{path}:{line}: sev2.status_evry: Extra inputs are not permitted" in result.stdout
    assert f"1 error in {folder}" in result.stdout, result.stdout
