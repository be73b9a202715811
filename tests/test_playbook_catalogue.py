"""The bundled catalogue: every procedure in the source runbooks is a playbook that loads."""

from __future__ import annotations

import pytest

from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.playbooks.catalogue import Catalogue, Threshold, load_catalogue

WAQITI = ["alert-delivery", "saga", "audit-gap", "idor", "legal-pdf"]  # runbook 004
GENERIC = ["billing-failure", "meter-lag", "agent-misbehaviour", "security-breach", "originfd"]
OPERATIONS = ["capability-ops", "maker-access", "canary-rollback"]  # runbooks 000, 001, 003


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue(BUNDLED_PLAYBOOKS)


@pytest.mark.parametrize("name", WAQITI + GENERIC + OPERATIONS)
def test_every_runbook_procedure_has_a_playbook_that_loads(catalogue: Catalogue, name: str) -> None:
    playbook = catalogue.find(name)
    assert playbook is not None and playbook.name == name
    assert (BUNDLED_PLAYBOOKS / f"{name}.yml").is_file()
    assert playbook.source and playbook.summary and playbook.symptoms
    assert playbook.checks or playbook.steps


@pytest.mark.parametrize("name", WAQITI)
def test_waqiti_playbooks_have_an_automated_check_and_a_verification(
    catalogue: Catalogue, name: str
) -> None:
    playbook = catalogue.playbooks[name]
    assert playbook.checks, f"{name} has no automated check"
    assert playbook.verification or any(s.startswith("Verify") for s in playbook.steps)


@pytest.mark.parametrize(
    ("name", "who"),
    [
        ("audit-gap", ["Compliance Officer"]),
        ("idor", ["Security Lead", "Legal"]),
        ("security-breach", ["CISO", "Legal"]),
        ("agent-misbehaviour", ["AI Platform Owner", "Compliance Manager"]),
    ],
)
def test_compliance_and_security_playbooks_name_who_to_notify(
    catalogue: Catalogue, name: str, who: list[str]
) -> None:
    escalation = " ".join(catalogue.playbooks[name].escalation)
    for role in who:
        assert role in escalation, f"{name}: escalation does not name {role}"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Alerts not reaching PagerDuty", "alert-delivery"),
        ("Slack alerts delayed", "alert-delivery"),
        ("SAGA compensation storm on payments", "saga"),
        ("Encryption audit records missing", "audit-gap"),
        ("IDOR attack: X-User-ID header manipulation", "idor"),
        ("Legal PDF generation failing", "legal-pdf"),
        ("Subpoena PDFs stuck", "legal-pdf"),
        ("Billing run failed", "billing-failure"),
        ("Meter telemetry delayed, ingestion lagging", "meter-lag"),
        ("AI agent leaking tenant data", "agent-misbehaviour"),
        ("Suspected security breach: leaked credentials", "security-breach"),
        ("OriginFD project sync failing", "originfd"),
        ("Stripe onboarding blockers delaying payouts", "capability-ops"),
        ("Maker invitations failing to send", "maker-access"),
        ("Bad canary deploy needs rollback", "canary-rollback"),
    ],
)
def test_declaring_an_incident_suggests_its_playbook_first(
    catalogue: Catalogue, title: str, expected: str
) -> None:
    suggested = [p.name for p in catalogue.suggest(title)]
    assert suggested[:1] == [expected], (title, suggested)


@pytest.mark.parametrize(
    "title",
    ["Second incident", "Test incident sev4", "Something is wrong", "Weird issue in prod"],
)
def test_a_title_without_a_distinctive_word_suggests_no_playbook(
    catalogue: Catalogue, title: str
) -> None:
    """Words most playbooks share ("incident", "service") say nothing about which one fits."""
    assert [p.name for p in catalogue.suggest(title)] == []


def test_names_and_aliases_are_unique_across_playbooks(catalogue: Catalogue) -> None:
    keys = [k for p in catalogue.playbooks.values() for k in [p.name, *p.aliases]]
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []


def test_kubernetes_targets_use_the_waqiti_namespace(catalogue: Catalogue) -> None:
    for playbook in catalogue.playbooks.values():
        for ref in [*playbook.checks, *playbook.verification]:
            if ref.check.startswith("kubernetes."):
                assert ref.params["namespace"] == "waqiti", (playbook.name, ref.id)
        for remedy in playbook.remediations:
            if remedy.action.endswith("_deployment"):
                assert remedy.params["namespace"] == "waqiti", (playbook.name, remedy.label)


def test_the_kill_switch_is_a_feature_flag_remediation(catalogue: Catalogue) -> None:
    agent = catalogue.playbooks["agent-misbehaviour"]
    assert catalogue.find("kill-switch") is agent
    flags = {(r.params["flag"], r.params["value"]) for r in agent.remediations}
    assert ("agent_safe_mode", 1) in flags


def test_canary_rollback_verifies_the_deployments_it_rolls_back(catalogue: Catalogue) -> None:
    canary = catalogue.playbooks["canary-rollback"]
    rolled_back = {
        r.params["deployment"] for r in canary.remediations if r.action == "rollback_deployment"
    }
    verified = {v.params["name"] for v in canary.verification if v.check == "kubernetes.deployment"}
    assert rolled_back and rolled_back == verified


@pytest.mark.parametrize(
    ("success", "band"),
    [(99.9, "normal"), (99.5, "warning"), (99.2, "warning"), (99.0, "warning"), (98.9, "critical")],
)
def test_pdf_failure_threshold_matches_the_pdf_success_row(
    catalogue: Catalogue, success: float, band: str
) -> None:
    # Key Metrics, PDF Generation Success: >99.5% / 99-99.5% / <99%; the check reads failures.
    check = next(c for c in catalogue.playbooks["legal-pdf"].checks if c.id == "failure_rate")
    assert check.thresholds is not None
    success_row = Threshold(warning=99.5, critical=99, direction="below", unit="%")
    assert success_row.band(success) == band
    assert check.thresholds.band(round(100 - success, 6)) == band
