"""The severity policy file: the runbook's values, strict keys, durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.errors import ConfigError
from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.core.timefmt import parse_duration
from bot.domain.policy import load_severity_policy


def test_bundled_policy_matches_the_runbook() -> None:
    policy = load_severity_policy(BUNDLED_PLAYBOOKS)
    assert [policy.level(k).status_every for k in ("sev1", "sev2", "sev3", "sev4")] == [
        900.0,
        1800.0,
        3600.0,
        None,
    ]
    assert policy.level("sev1").escalate_after == 0
    assert policy.level("sev1").escalate_to == ["eng-manager", "cto"]
    assert policy.level("sev2").escalate_after == 1800
    assert policy.level("sev3").escalate_after == 7200
    assert policy.level("sev4").escalate_after is None
    assert [policy.level(k).pagerduty_urgency for k in ("sev1", "sev2", "sev3", "sev4")] == [
        "high",
        "high",
        "low",
        "low",
    ]


def _write(tmp_path: Path, text: str) -> Path:
    bundled = (BUNDLED_PLAYBOOKS / "severities.yml").read_text()
    (tmp_path / "severities.yml").write_text(text if text else bundled)
    return tmp_path


def test_a_typo_in_a_key_is_rejected_not_ignored(tmp_path: Path) -> None:
    bundled = (BUNDLED_PLAYBOOKS / "severities.yml").read_text()
    broken = bundled.replace("status_every: 15m", "status_evry: 15m", 1)
    with pytest.raises(ConfigError, match="status_evry"):
        load_severity_policy(_write(tmp_path, broken))


def test_an_unknown_escalation_contact_is_rejected(tmp_path: Path) -> None:
    bundled = (BUNDLED_PLAYBOOKS / "severities.yml").read_text()
    broken = bundled.replace("escalate_to: [eng-manager, cto]", "escalate_to: [eng-manger]", 1)
    with pytest.raises(ConfigError, match="eng-manger"):
        load_severity_policy(_write(tmp_path, broken))


def test_a_bad_duration_is_rejected(tmp_path: Path) -> None:
    bundled = (BUNDLED_PLAYBOOKS / "severities.yml").read_text()
    broken = bundled.replace("status_every: 30m", "status_every: soon", 1)
    with pytest.raises(ConfigError, match="soon"):
        load_severity_policy(_write(tmp_path, broken))


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("45s", 45.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        (30, 30.0),
        ("90", 90.0),
        (None, None),
    ],
)
def test_durations(raw: object, seconds: float | None) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize("raw", ["-5m", "5 minutes", "m", True, -1])
def test_bad_durations_raise(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(raw)
