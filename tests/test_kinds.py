"""Timeline and outbox kinds are enums whose stored values are the strings rows already hold."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import pytest

from bot.core.models import utcnow
from bot.domain import timeline
from bot.domain.timeline import Kind
from bot.store.outbox import OutboxKind
from tests.conftest import Bot

STORED_KINDS = {
    "DECLARED": "declared", "ROLE": "role_assigned", "HANDOVER": "handover",
    "SEVERITY": "severity_changed", "STATUS": "status_update", "NOTE": "note",
    "RESOLVED": "resolved", "PROMPT": "status_prompt", "PROMPT_ESCALATED": "prompt_escalated",
    "ESCALATED": "escalated", "CHECKLIST": "checklist", "CHECKLIST_TICK": "checklist_ticked",
    "PAGERDUTY": "pagerduty", "REOPENED": "reopened", "PAGED": "paged",
    "DIAGNOSIS_STARTED": "diagnosis_started", "DIAGNOSIS": "diagnosis",
    "APPROVAL_REQUESTED": "approval_requested", "APPROVAL_GIVEN": "approval_given",
    "APPROVED": "approved", "APPROVAL_DENIED": "approval_denied",
    "APPROVAL_EXPIRED": "approval_expired", "REMEDIATION_STARTED": "remediation_started",
    "REMEDIATION_RESULT": "remediation_result", "ALERT_FIRING": "alert_firing",
    "ALERT_RESOLVED": "alert_resolved", "POSTMORTEM_POSTED": "postmortem_posted",
    "REDACTED": "redacted",
    "MESSAGE": "message", "MESSAGE_EDITED": "message_edited",
    "MESSAGE_DELETED": "message_deleted", "PINNED": "pinned", "UNPINNED": "unpinned",
    "ACTION_ITEM": "action_item",
    "SLACK_UNREACHABLE": "slack_unreachable", "SLACK_REACHABLE": "slack_reachable",
    "JIRA_LINKED": "jira_linked", "ACTION_ITEM_DONE": "action_item_done", "JIRA": "jira",
    "GRAFANA": "grafana",
}  # fmt: skip


def test_timeline_kinds_are_an_enum_of_the_strings_stored_rows_hold() -> None:
    assert issubclass(Kind, StrEnum)
    assert {k.name: k.value for k in Kind} == STORED_KINDS


def test_outbox_kinds_are_an_enum_of_the_strings_stored_rows_hold() -> None:
    assert issubclass(OutboxKind, StrEnum)
    assert {k.value for k in OutboxKind} == {"card", "reply", "digest", "refresh", "file_delete"}


def test_an_entry_hashes_as_it_did_when_kinds_were_strings() -> None:
    """The digest below was computed with kind="declared" before Kind became an enum."""
    chash = timeline.content_hash(
        incident_id=7, seq=3, kind=Kind.DECLARED, actor="U1", text="Payments failing",
        data={"severity": "sev1"}, occurred_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )  # fmt: skip
    assert chash == "088cd71fd2c00664ba37bec973468bece8211fba79aa89b38b61b6ed8e1d7468"


async def test_record_accepts_only_a_kind(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    async with bot.services.pool.acquire() as conn, conn.transaction():
        with pytest.raises(TypeError, match="Kind"):
            await timeline.record(
                conn, incident_id=1, kind="note", text="typed by hand",  # type: ignore[arg-type]
                actor="U1", occurred_at=utcnow(),
            )  # fmt: skip
    rows = await bot.fetch("SELECT kind FROM timeline ORDER BY seq")
    assert [r["kind"] for r in rows] == ["declared"]
    assert (await bot.services.incidents.verify(1)).ok
