"""Playbooks as data: every bundled playbook loads, every name resolves, errors say where."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.playbooks.catalogue import Threshold, load_catalogue, validate_dir
from bot.playbooks.checks import CHECKS
from bot.playbooks.remediations import REMEDIATIONS


def test_every_bundled_playbook_loads_and_every_name_resolves() -> None:
    catalogue = load_catalogue(BUNDLED_PLAYBOOKS)
    assert "saga" in catalogue.playbooks
    for playbook in catalogue.playbooks.values():
        for ref in [*playbook.checks, *playbook.verification]:
            assert ref.check in CHECKS
            ref.parsed_params()
        for remedy in playbook.remediations:
            assert remedy.action in REMEDIATIONS


def test_playbooks_are_found_by_name_or_alias() -> None:
    catalogue = load_catalogue(BUNDLED_PLAYBOOKS)
    assert catalogue.find("saga") is catalogue.find("compensation")
    assert catalogue.find("SAGA") is not None
    assert catalogue.find("no-such-playbook") is None


def test_declaring_suggests_playbooks_whose_symptoms_match_the_title() -> None:
    catalogue = load_catalogue(BUNDLED_PLAYBOOKS)
    assert [p.name for p in catalogue.suggest("SAGA compensation storm on payments")][:1] == [
        "saga"
    ]
    assert catalogue.suggest("zzz qqq") == []


def _copy_with(tmp_path: Path, replace: tuple[str, str]) -> Path:
    text = (BUNDLED_PLAYBOOKS / "saga.yml").read_text()
    assert replace[0] in text
    (tmp_path / "saga.yml").write_text(text.replace(*replace, 1))
    (tmp_path / "severities.yml").write_text((BUNDLED_PLAYBOOKS / "severities.yml").read_text())
    return tmp_path


def _line_of(path: Path, fragment: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if fragment in line)


@pytest.mark.parametrize(
    ("replace", "message", "on_line"),
    [
        (
            ("check: actuator.ratio", "check: actuator.ratoi"),
            "unknown check 'actuator.ratoi'",
            "id: compensation_rate",
        ),
        (
            ("action: restart_deployment", "action: reboot_everything"),
            "unknown remediation",
            "action: reboot_everything",
        ),
        (
            ("tail_lines: 1000}", "tail_lines: 99999}"),
            "less than or equal to 10000",
            "tail_lines: 99999",
        ),
        (("severity: sev2", "severity: sev7"), "severity", "severity: sev7"),
        (("title: Payment SAGA compensation storm", "titel: x"), "Extra inputs", "titel: x"),
    ],
)
def test_invalid_playbook_errors_name_file_and_line(
    tmp_path: Path, replace: tuple[str, str], message: str, on_line: str
) -> None:
    folder = _copy_with(tmp_path, replace)
    _, errors = validate_dir(folder)
    path = folder / "saga.yml"
    where = f"{path}:{_line_of(path, on_line)}:"
    assert any(e.startswith(where) and message in e for e in errors), (where, errors)


def test_validate_cli_exits_nonzero_with_file_line_errors(tmp_path: Path) -> None:
    folder = _copy_with(tmp_path, ("check: actuator.ratio", "check: actuator.ratoi"))
    result = subprocess.run(
        [sys.executable, "-m", "bot", "playbooks", "validate", str(folder)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{folder / 'saga.yml'}:" in result.stdout and "actuator.ratoi" in result.stdout
    ok = subprocess.run(
        [sys.executable, "-m", "bot", "playbooks", "validate", str(BUNDLED_PLAYBOOKS)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr


@pytest.mark.parametrize(
    ("value", "band"),
    [(0.05, "normal"), (0.1, "warning"), (0.5, "warning"), (1.0, "warning"), (1.01, "critical")],
)
def test_threshold_bands_follow_the_key_metrics_table(value: float, band: str) -> None:
    saga_rate = Threshold(warning=0.1, critical=1, unit="%")
    assert saga_rate.band(value) == band


@pytest.mark.parametrize(
    ("value", "band"), [(99.9, "normal"), (99.5, "warning"), (99.0, "warning"), (98.9, "critical")]
)
def test_below_thresholds_mirror_for_success_rates(value: float, band: str) -> None:
    pdf_success = Threshold(warning=99.5, critical=99, direction="below", unit="%")
    assert pdf_success.band(value) == band


def test_thresholds_in_the_wrong_order_are_rejected() -> None:
    with pytest.raises(ValueError, match="warning must not exceed critical"):
        Threshold(warning=5, critical=1)
