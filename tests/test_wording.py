"""Issue 18, wording in one place: entries are data, `bot/core/wording.py` renders them.

Rules: every flavour renders every kind (Slack mentions people, plain text has no markup,
outside text is inert where the bot posts it); v1 rows copied from a database of the previous
version still verify (`icbot audit verify`, the offline bundle) and read exactly as they did;
v2 rows verify and store the Slack words the old code wrote; any data renders without raising.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core import wording
from bot.core.errors import Conflict, NotFound, UserError
from bot.core.models import TimelineEntry, utcnow
from bot.core.text import inert
from bot.core.wording import Flavour
from bot.domain import timeline
from bot.domain.policy import DEFAULT_PROMPT
from bot.domain.timeline import Kind
from commands import blocks
from tests.conftest import Bot
from tests.test_evidence_bundle import _icbot

FIXTURE = Path(__file__).parent / "fixtures" / "timeline_v1.json"
U1, U2, U3 = "U0000000001", "U0000000002", "U0000000003"
EVIL = "<!channel> see <https://evil.example/x|https://grafana.example>"

# One v2 entry of each converted kind: (kind, actor, data).
SAMPLES: list[tuple[Kind, str, dict[str, Any]]] = [
    (Kind.DECLARED, U1, wording.data(title="Payments failing", severity="sev1", commander=U1,
                                     name="Critical", paging="off", pagerduty_number=None)),
    (Kind.DECLARED, U1, wording.data(title="Ledger", severity="sev3", commander=None,
                                     name="Minor", paging="linked", pagerduty_number=42)),
    (Kind.ROLE, U1, wording.data(role="scribe", user=U2, previous=U3)),
    (Kind.HANDOVER, U1, wording.data(role="incident commander", user=U2, previous=U1,
                                     summary={})),
    (Kind.HANDOVER, U3, wording.data(role="scribe", user=U2, previous=None, summary={})),
    (Kind.SEVERITY, U1, wording.data(**{"from": "sev1", "to": "sev2"}, name="High")),
    (Kind.SEVERITY, "alerts", wording.data(**{"from": "sev3", "to": "sev1"}, name="Critical",
                                           alert={"name": "LedgerDown", "service": "ledger",
                                                  "severity": "critical"})),
    (Kind.STATUS, U1, wording.data(text="Mitigating: rolled back", stage="mitigating")),
    (Kind.NOTE, U2, wording.data(text="pool at 100%")),
    (Kind.RESOLVED, U1, wording.data(summary="Rolled back", duration_s=3725,
                                     cancelled=[7], cancelled_requests=[{"id": 7,
                                                                         "label": "Restart x"}])),
    (Kind.REOPENED, "pagerduty", wording.data(reason="reopened in PagerDuty")),
    (Kind.PAGED, U1, wording.data(who="dba", targets=[], message="join please")),
    (Kind.APPROVAL_REQUESTED, U1, wording.data(pending_id=1, action="restart_deployment",
                                               params={}, label="Restart x", required=2,
                                               approvers=["anyone", f"user:{U3}", "group:S1",
                                                          "role:dba"],
                                               preview=["Restart `x`", "3 pods"])),
    (Kind.APPROVAL_GIVEN, U2, wording.data(pending_id=1, label="Restart x", decision="partial",
                                           approvals=1, required=2)),
    (Kind.APPROVED, U2, wording.data(pending_id=1, label="Restart x", decision="approved",
                                     approvals=2, required=2)),
    (Kind.APPROVAL_DENIED, U2, wording.data(pending_id=1, label="Restart x", decision="denied",
                                            approvals=0, required=2)),
    (Kind.APPROVAL_EXPIRED, "icbot", wording.data(pending_id=1, label="Restart x")),
    (Kind.REMEDIATION_STARTED, "icbot", wording.data(pending_id=1, label="Restart x")),
    (Kind.REMEDIATION_RESULT, "icbot", wording.data(pending_id=1, label="Restart x", ok=False,
                                                    summary="failed: boom", verification="no",
                                                    ran=True, late=True)),
    (Kind.REMEDIATION_RESULT, "icbot", wording.data(pending_id=1, label="Restart x", ok=False,
                                                    summary="it changed", changed=True,
                                                    verification="not run")),
    (Kind.REMEDIATION_RESULT, "icbot", wording.data(pending_id=1, label="Restart x", ok=False,
                                                    summary="interrupted", interrupted="running",
                                                    verification="not verified")),
    (Kind.ALERT_FIRING, "alerts", wording.data(alerts=[{"alert_name": "LedgerDown",
                                                        "service": "ledger", "again": True}],
                                               count=1, fired={"source": "alertmanager",
                                                               "severity": "critical",
                                                               "mapped": "sev1",
                                                               "summary": "Ledger down"})),
    (Kind.ALERT_RESOLVED, "alerts", wording.data(alerts=[{"alert_name": "LedgerDown",
                                                          "service": "ledger", "firing": 1200}],
                                                 count=1)),
    (Kind.PROMPT, "icbot", wording.data(prompt_seq=2, reminder=True, template=DEFAULT_PROMPT,
                                        who=None, title="Payments", severity="sev2",
                                        since="30m")),
    (Kind.PROMPT_ESCALATED, "icbot", wording.data(prompt_seq=3, contacts=["dba"], who=U1,
                                                  pings=[U2, "S0DBA", "dba"], since="45m",
                                                  paging="paged")),
    (Kind.ESCALATED, "icbot", wording.data(contacts=["dba"], policy="sev1", pings=["S0DBA"],
                                           after_s=600.0, title="Payments", paging="off")),
    (Kind.CHECKLIST, "icbot", wording.data(reminder=1, stage="now", items=["a"],
                                           title="Immediate", who=U1)),
    (Kind.REDACTED, "icbot", wording.data(kinds=["card_number", "slack_token"], card=True,
                                          author=U2, entry=3,
                                          found=["card number", "Slack bot token"])),
    (Kind.DIAGNOSIS_STARTED, U1, wording.data(playbook="saga", title="Saga stuck?")),
    (Kind.POSTMORTEM_POSTED, U1, wording.data(file="F1", name="postmortem-INC-1.md", lines=40,
                                              entries=12, upto=12)),
    (Kind.CHECKLIST_TICK, U2, wording.data(reminder=1, added=[0], removed=[1], title="Immediate",
                                           ticked=["a"], unticked=["b"], done=1, of=4)),
]  # fmt: skip


def _entry(kind: str, actor: str, data: dict[str, Any], *, text: str = "") -> TimelineEntry:
    return TimelineEntry(
        id=1, incident_id=1, seq=1, kind=kind, actor=actor, text=text, data=data,
        occurred_at=utcnow(), content_hash="", prev_hash="", hash="",
    )  # fmt: skip


def _v1_rows() -> tuple[list[TimelineEntry], dict[str, Any]]:
    doc = json.loads(FIXTURE.read_text())
    entries = [
        TimelineEntry(
            id=r["id"],
            incident_id=r["incident_id"],
            seq=r["seq"],
            kind=r["kind"],
            actor=r["actor"],
            text=r["text"],
            data=r["data"],
            occurred_at=datetime.fromisoformat(r["occurred_at"]),
            content_hash=r["content_hash"],
            prev_hash=r["prev_hash"],
            hash=r["hash"],
        )
        for r in doc["rows"]
    ]
    return entries, doc["incidents"][0]


def test_every_renderer_is_named_by_a_timeline_kind() -> None:
    assert set(wording.RENDERERS) <= {k.value for k in Kind}


def test_every_timeline_kind_has_a_renderer_so_no_kind_needs_v1_text() -> None:
    assert {k.value for k in Kind} - set(wording.RENDERERS) == set()


@pytest.mark.parametrize(("kind", "actor", "data"), SAMPLES, ids=lambda v: str(v)[:20])
def test_each_kind_renders_in_each_flavour(kind: Kind, actor: str, data: dict[str, Any]) -> None:
    entry = _entry(kind, actor, data)
    slack = wording.entry_text(entry, Flavour.SLACK)
    markdown = wording.entry_text(entry, Flavour.MARKDOWN)
    text = wording.entry_text(entry, Flavour.PLAIN)
    assert slack and markdown and text
    assert not re.search(r"[*`]|<@|<!|:[a-z_]+:", text), text
    assert "<!" not in markdown and not re.search(r"(?<!\*)\*[^*]+\*(?!\*)", markdown), markdown
    people = [p for p in (actor, data.get("user"), data.get("previous")) if p and p[0] == "U"]
    for person in people:  # Slack mentions (and notifies) the people it did before
        if person in slack.replace("<@", " ").replace(">", " ").split():
            assert f"<@{person}>" in slack and f"@{person}" in text


def test_outside_text_is_inert_in_slack_and_markdown_and_plain_in_plain() -> None:
    entry = _entry(Kind.NOTE, U1, wording.data(text=EVIL))
    slack = wording.entry_text(entry, Flavour.SLACK)
    assert slack == f"Note from <@{U1}>: {inert(EVIL)}"
    assert "<!channel>" not in slack and "|https://grafana" not in slack
    assert wording.entry_text(entry, Flavour.SLACK, typed=True) == f"Note from <@{U1}>: {EVIL}"
    assert "<!channel>" not in wording.entry_text(entry, Flavour.MARKDOWN)
    text = wording.entry_text(entry, Flavour.PLAIN)
    assert text == f"Note from @{U1}: @channel see https://grafana.example (https://evil.example/x)"


def test_bold_and_code_are_markup_in_slack_and_markdown_and_words_in_plain() -> None:
    entry = _entry(Kind.SEVERITY, "alerts", next(d for k, _, d in SAMPLES if "alert" in d))
    said = (
        "Severity SEV3 → SEV1 (Critical) by alert {b}LedgerDown{b} on `ledger` (severity critical)."
    )
    assert wording.entry_text(entry, Flavour.SLACK) == said.format(b="*")
    assert wording.entry_text(entry, Flavour.MARKDOWN) == said.format(b="**")
    assert wording.entry_text(entry, Flavour.PLAIN) == said.format(b="").replace("`", "")


def test_v1_rows_of_the_previous_version_still_verify() -> None:
    entries, incident = _v1_rows()
    result = timeline.verify_chain(
        entries, count=incident["timeline_count"], head=incident["timeline_head"]
    )
    assert result.ok and result.checked == len(entries) == 10, result.problems


def test_v1_rows_read_exactly_as_before() -> None:
    entries, _ = _v1_rows()
    for entry in entries:
        assert not wording.is_v2(entry.data)
        assert wording.entry_text(entry, Flavour.SLACK) == entry.text
        assert blocks._timeline_line(entry).endswith(f" {inert(entry.text)}")
    result = next(e for e in entries if e.kind == Kind.REMEDIATION_RESULT)
    assert wording.entry_text(result, Flavour.MARKDOWN).startswith("Roll back payment-service:")


# The v2 data of the fixture's v1 rows (what today's code records for the same change): the
# Slack words stored with it are the very words the previous version wrote.
V2_OF_V1 = {
    1: wording.data(title="Payments failing", severity="sev1", commander=U1, name="Critical",
                    paging="off", pagerduty_number=None),
    3: wording.data(role="scribe", user="U0DANA", previous=None),
    4: wording.data(text="Mitigating: rolled back <!channel> see <https://x.example|here>",
                    stage="mitigating"),
    5: wording.data(text="Root cause: *bad* `deploy` & <b>"),
    6: wording.data(**{"from": "sev1", "to": "sev2"}, name="High"),
    10: wording.data(summary="Rolled back the deploy", duration_s=1),
    7: wording.data(pending_id=1, label="Roll back payment-service", decision="approved",
                    approvals=1, required=1),
    8: wording.data(pending_id=1, label="Roll back payment-service"),
    9: wording.data(pending_id=1, label="Roll back payment-service", ok=True, ran=True,
                    summary="rolled back waqiti/payment-service to revision 2 (`payments:1.4.1`)",
                    verification="deployment payment-service successfully rolled out (3/3 ready)"),
}  # fmt: skip


def test_v2_approval_requests_store_the_words_v1_rows_stored() -> None:
    entries, _ = _v1_rows()
    [requested] = [e for e in entries if e.kind == Kind.APPROVAL_REQUESTED]
    preview = requested.text.split(" from anyone: ", 1)[1].split("; ")
    data = wording.data(pending_id=1, action="rollback_deployment", params={},
                        label="Roll back payment-service", required=1, approvers=["anyone"],
                        preview=preview)  # fmt: skip
    stored = wording.stored_text(requested.kind, actor=U1, incident_id=1, data=data)
    # The one deliberate change since v1 (issue 22): "1 approval", not "1 approval(s)".
    assert stored == requested.text.replace("1 approval(s)", "1 approval")
    assert "1 approval(s)" in requested.text


def test_v2_rows_store_the_words_v1_rows_stored() -> None:
    entries, _ = _v1_rows()
    for entry in entries:
        if entry.seq in V2_OF_V1:
            stored = wording.stored_text(
                entry.kind, actor=entry.actor, incident_id=1, data=V2_OF_V1[entry.seq]
            )
            assert stored == entry.text
            again = _entry(entry.kind, entry.actor, V2_OF_V1[entry.seq])
            assert wording.entry_text(again, Flavour.SLACK) == inert(entry.text)


async def _load_v1(bot: Bot) -> None:
    """The fixture's rows as incident 1's timeline (declared first, so the row exists)."""
    entries, incident = _v1_rows()
    await bot.command("declare Payments failing sev1")
    async with bot.services.pool.acquire() as conn, conn.transaction():
        await conn.execute("DELETE FROM outbox")
        await conn.execute("DELETE FROM timeline")
        for e in entries:
            await conn.execute(
                "INSERT INTO timeline (incident_id, seq, kind, actor, text, data, occurred_at,"
                " content_hash, prev_hash, hash) VALUES (1, $1, $2, $3, $4, $5, $6, $7,"
                " $8, $9)",
                e.seq, e.kind, e.actor, e.text, e.data, e.occurred_at,
                e.content_hash, e.prev_hash, e.hash,
            )  # fmt: skip
        await conn.execute(
            "UPDATE incidents SET timeline_count = $1, timeline_head = $2 WHERE id = 1",
            incident["timeline_count"], incident["timeline_head"],
        )  # fmt: skip


async def test_v1_rows_in_a_database_pass_icbot_audit_verify(bot: Bot, dsn: str) -> None:
    await _load_v1(bot)
    verified = await _icbot("audit", "verify", "INC-1", dsn=dsn)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact (10 entries verified)" in verified.stdout
    await bot.command("timeline")
    shown = bot.last_reply()
    assert "Status update from <@U0000000001>: Mitigating: rolled back @channel" in shown


async def test_new_rows_are_v2_store_their_slack_words_and_verify(bot: Bot, dsn: str) -> None:
    await bot.command("declare Payments failing sev2")
    await bot.command(f"assign <@{bot.user('dana')}> scribe")
    await bot.command("status Mitigating: rolled back")
    await bot.command("note pool at 100%")
    await bot.command("sev sev1")
    await bot.command("resolve Rolled back")
    rows = await bot.fetch("SELECT kind, actor, text, data FROM timeline ORDER BY seq")
    assert [r["kind"] for r in rows] == [
        "declared", "role_assigned", "status_update", "note", "severity_changed", "resolved",
    ]  # fmt: skip
    for row in rows:
        data = row["data"] if isinstance(row["data"], dict) else json.loads(row["data"])
        assert data["v"] == 2
        assert row["text"] == wording.stored_text(
            row["kind"], actor=row["actor"], incident_id=1, data=data
        )
    assert rows[2]["text"] == f"Status update from <@{bot.user('alice')}>: Mitigating: rolled back"
    verified = await _icbot("audit", "verify", "INC-1", dsn=dsn)
    assert verified.returncode == 0 and "intact (6 entries verified)" in verified.stdout


async def test_record_without_text_needs_versioned_data(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    async with bot.services.pool.acquire() as conn, conn.transaction():
        with pytest.raises(TypeError, match=r"wording\.data"):
            await timeline.record(
                conn, incident_id=1, kind=Kind.NOTE, actor="U1", occurred_at=utcnow(),
                data={"text": "no version"},
            )  # fmt: skip
    assert [r["kind"] for r in await bot.fetch("SELECT kind FROM timeline")] == ["declared"]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
FIELDS = st.sampled_from(
    ["text", "user", "previous", "role", "from", "to", "name", "alert", "title", "severity",
     "commander", "paging", "pagerduty_number", "summary", "duration_s", "cancelled_requests",
     "reason", "who", "message", "ticked", "unticked", "done", "of", "label", "action"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(sorted(wording.RENDERERS)),
    actor=st.text(max_size=20),
    fields=st.dictionaries(FIELDS | st.text(max_size=8), JSON, max_size=8),
    flavour=st.sampled_from(list(Flavour)),
)
def test_any_data_renders_without_raising(
    kind: str, actor: str, fields: dict[str, Any], flavour: Flavour
) -> None:
    entry = _entry(kind, actor, {**fields, "v": 2})
    assert isinstance(wording.entry_text(entry, flavour), str)
    assert isinstance(wording.stored_text(kind, actor=actor, incident_id=1, data=entry.data), str)


def _sample(kind: Kind) -> dict[str, Any]:
    return next(data for k, _, data in SAMPLES if k == kind)


def _alerts(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"alert_name": f"A{i}", "service": "s", **extra} for i in range(n)]


@pytest.mark.parametrize(
    ("kind", "data", "v1"),
    [
        (Kind.ALERT_FIRING, _sample(Kind.ALERT_FIRING),
         "Alert *LedgerDown* on `ledger` is firing again (alertmanager, severity critical → SEV1):"
         " Ledger down"),
        (Kind.ALERT_FIRING, wording.data(alerts=_alerts(7, again=True), count=7),
         "7 alerts are firing: *A0* on `s` (again), *A1* on `s` (again), *A2* on `s` (again),"
         " *A3* on `s` (again), *A4* on `s` (again) and 2 more."),
        (Kind.ALERT_RESOLVED, _sample(Kind.ALERT_RESOLVED),
         "Alert *LedgerDown* on `ledger` resolved (1,200 firing notifications in its window)."),
        (Kind.ALERT_RESOLVED, wording.data(alerts=_alerts(2), count=2),
         "2 alerts resolved: *A0* on `s`, *A1* on `s`."),
    ],
)  # fmt: skip
def test_alert_entries_store_the_words_v1_alert_entries_had(
    kind: Kind, data: dict[str, Any], v1: str
) -> None:
    assert wording.stored_text(kind, actor="alerts", incident_id=1, data=data) == v1


@pytest.mark.parametrize(
    ("kind", "data", "v1"),
    [
        (Kind.PROMPT, wording.data(prompt_seq=2, reminder=True, template=DEFAULT_PROMPT,
                                   who=None, title=f"Payments {EVIL}", severity="sev2",
                                   since="30m"),
         "Reminder — " + DEFAULT_PROMPT.format(who="<!channel>", ref="INC-1",
                                               title=inert(f"Payments {EVIL}"),
                                               severity="SEV2", since="30m")),
        (Kind.PROMPT_ESCALATED, wording.data(prompt_seq=3, contacts=[], who=U1, pings=[],
                                             since="45m", paging="off"),
         f"No status update on INC-1 for 45m after two prompts. Escalating to <!channel>."
         f" <@{U1}>, please post one. PagerDuty is not configured, so this mention is the page."),
        (Kind.ESCALATED, wording.data(contacts=["a", "b"], policy="sev1", after_s=None,
                                      pings=[f"@{U2}", "S0DBA"], title="Ledger",
                                      paging="no_ids"),
         f"SEV1 policy escalates at once: <@{U2}>, <!subteam^S0DBA>, you are needed on INC-1"
         " (Ledger). PagerDuty has no ids for them, so this mention is the page."),
        (Kind.CHECKLIST, wording.data(reminder=1, stage="now", items=[], title="Immediate",
                                      who=None),
         "<!channel>: post-incident checklist for INC-1 — Immediate."),
        (Kind.DIAGNOSIS_STARTED, _sample(Kind.DIAGNOSIS_STARTED),
         f"<@{U1}> is diagnosing `saga` (Saga stuck?)…"),
        (Kind.POSTMORTEM_POSTED, _sample(Kind.POSTMORTEM_POSTED),
         f"<@{U1}> posted the post-mortem draft in the thread: postmortem-INC-1.md (40 lines,"
         " from 12 timeline entries)."),
        (Kind.REDACTED, _sample(Kind.REDACTED),
         f"card number and Slack bot token redacted from <@{U2}>'s message."),
    ],
)  # fmt: skip
def test_prompts_escalations_checklists_and_redactions_read_in_slack_as_before(
    kind: Kind, data: dict[str, Any], v1: str
) -> None:
    entry = _entry(kind, next((a for k, a, d in SAMPLES if d is data), "icbot"), data)
    assert wording.entry_text(entry, Flavour.SLACK) == v1
    assert "<!" not in wording.entry_text(entry, Flavour.PLAIN)
    assert "<!" not in wording.entry_text(entry, Flavour.MARKDOWN)


def test_a_domain_error_is_pieces_rendered_where_it_is_shown() -> None:
    error = Conflict(wording.Person(U1), " is already ", wording.Said("scribe"), " of INC-1.")
    assert str(error) == f"<@{U1}> is already scribe of INC-1."  # what the edge replies
    assert error.text(Flavour.PLAIN) == f"@{U1} is already scribe of INC-1."
    missing = NotFound("INC-9 does not exist. ", wording.Code("/ic list"), " shows incidents.")
    assert str(missing) == "INC-9 does not exist. `/ic list` shows incidents."
    assert missing.text(Flavour.PLAIN) == "INC-9 does not exist. /ic list shows incidents."
    assert str(UserError("as written")) == "as written"  # one string: exactly as before


async def test_assigning_a_role_twice_names_the_holder_as_a_mention(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    dana = bot.user("dana")
    await bot.command(f"assign <@{dana}> scribe")
    await bot.command(f"assign <@{dana}> scribe")
    assert bot.last_reply() == f"<@{dana}> is already scribe of INC-1."
    await bot.command("page nobody-here")
    assert "`nobody-here` is not a contact in severities.yml" in bot.last_reply()


# -- issue 18's remaining kinds: each stores the words its v1 code wrote -----------------------

PD_LINK = "https://acme.pagerduty.com/incidents/PABC"
ASSIGNEES = [{"id": "PU1", "summary": "Ana Ruiz"}, {"id": "PU2"}]
REMAINING: list[tuple[Kind, str, dict[str, Any], str]] = [
    (Kind.PAGERDUTY, "pagerduty", wording.data(what="opened", pagerduty_id="PABC", number=7,
                                               url=PD_LINK),
     f"PagerDuty incident #7 opened: <{PD_LINK}|PABC>"),
    (Kind.PAGERDUTY, "icbot", wording.data(what="refused", refused="pagerduty: bad key",
                                           why="bad key"),
     "PagerDuty refused to open an incident (bad key), so nobody was paged through PagerDuty:"
     " page by hand, or fix its settings."),
    (Kind.PAGERDUTY, "icbot", wording.data(lagging=True, what="lagging", reason="HTTP 503",
                                           pending=3),
     "PagerDuty is lagging (HTTP 503): 3 updates queued, retrying with back-off. Slack commands"
     " keep working."),
    (Kind.PAGERDUTY, "icbot", wording.data(lagging=False, what="caught_up"),
     "PagerDuty caught up: queued updates delivered."),
    (Kind.PAGERDUTY, "pagerduty", wording.data(event="incident.triggered", number=7,
                                               urgency="high", by="Ana Ruiz"),
     "PagerDuty triggered #7 (high urgency)."),
    (Kind.PAGERDUTY, "pagerduty", wording.data(event="incident.acknowledged", by="Ana Ruiz"),
     "Acknowledged in PagerDuty by Ana Ruiz."),
    (Kind.PAGERDUTY, "pagerduty", wording.data(event="incident.unacknowledged", by="x"),
     "PagerDuty: the acknowledgement timed out; paging again."),
    (Kind.PAGERDUTY, "pagerduty", wording.data(event="incident.escalated", by="x",
                                               assignees=ASSIGNEES),
     "PagerDuty escalated to Ana Ruiz, PU2."),
    (Kind.PAGERDUTY, "pagerduty", wording.data(event="incident.reassigned", by="Bo",
                                               assignees=[]),
     "PagerDuty reassigned to nobody by Bo."),
    (Kind.PAGERDUTY, "pagerduty", wording.data(event="incident.delegated", by="Bo",
                                               assignees=ASSIGNEES[:1]),
     "PagerDuty delegated to Ana Ruiz by Bo."),
    (Kind.PAGERDUTY, "pagerduty", wording.data(event="incident.priority_updated", by="Bo",
                                               priority=None),
     "PagerDuty priority set to none by Bo."),
    (Kind.PAGERDUTY, "pagerduty", wording.data(event="incident.annotated", by="Bo",
                                               content="DB failover *done*"),
     "PagerDuty note by Bo: DB failover *done*"),
    (Kind.MESSAGE, U2, wording.data(ts="1.2", text="db <!here> is *slow*", files=2,
                                    permalink="https://x.slack.com/p1"),
     f"<@{U2}>: db <!here> is *slow* (+2 files)"),
    (Kind.MESSAGE_EDITED, U2, wording.data(ts="1.2", text="db is fine", edits=4),
     f"<@{U2}> edited their message (#4): db is fine"),
    (Kind.MESSAGE_DELETED, "icbot", wording.data(ts="1.2", author=U2, drafts_removed=[],
                                                 redacts=[{"seq": 4}, {"seq": 6}]),
     f"A message by <@{U2}> was deleted in Slack; its text was removed from the timeline"
     " (#4, #6)."),
    (Kind.MESSAGE_DELETED, "icbot", wording.data(ts="1.2", author=U2, drafts_removed=["F1", "F2"],
                                                 redacts=[{"seq": 4}]),
     f"A message by <@{U2}> was deleted in Slack; its text was removed from the timeline (#4)."
     " 2 post-mortem drafts that could quote it were removed from the thread; `/ic postmortem`"
     " posts a fresh one."),
    (Kind.PINNED, U1, wording.data(ts="1.2", by=U1, author=U2, permalink="https://x.slack.com/p1"),
     f"<@{U1}> pinned <https://x.slack.com/p1|a message> by <@{U2}> as a key event."),
    (Kind.UNPINNED, U1, wording.data(ts="1.2", by=U1, author=U2),
     f"<@{U1}> removed the :pushpin: from a message by <@{U2}>; it is no longer a key event."),
    (Kind.ACTION_ITEM, U1, wording.data(text="Alert on lag", owner=U3),
     f"Action item from <@{U1}>: Alert on lag (owner <@{U3}>)"),
    (Kind.ACTION_ITEM, U1, wording.data(text="Alert on lag", owner=None),
     f"Action item from <@{U1}>: Alert on lag (no owner yet)"),
    (Kind.JIRA_LINKED, "jira", wording.data(item=5, number=1, key="OPS-7", text="Alert on lag",
                                            url="https://jira.example/browse/OPS-7"),
     "Jira <https://jira.example/browse/OPS-7|OPS-7> filed for action item 1: Alert on lag"),
    (Kind.ACTION_ITEM_DONE, U1, wording.data(item=5, number=1, via="slack", key="OPS-7",
                                             text="Alert on lag"),
     f"<@{U1}> ticked action item 1: Alert on lag (OPS-7)"),
    (Kind.ACTION_ITEM_DONE, U1, wording.data(item=5, number=2, via="slack", key=None,
                                             text="Alert on lag"),
     f"<@{U1}> ticked action item 2: Alert on lag"),
    (Kind.ACTION_ITEM_DONE, "jira:Ana", wording.data(item=5, number=1, via="jira", key="OPS-7",
                                                     by="Ana", text="Alert on lag"),
     "Action item 1 was resolved in Jira (OPS-7): Alert on lag"),
    (Kind.JIRA, "icbot", wording.data(refused="jira: 400", item=5, number=1, filing=True,
                                      why="field 'x' is required"),
     "Jira refused to file a Jira issue for action item 1 (field 'x' is required); do it by"
     " hand, or fix its settings."),
    (Kind.JIRA, "icbot", wording.data(refused="jira: 403", item=5, number=2, filing=False,
                                      why="forbidden"),
     "Jira refused to move action item 2's Jira issue to Done (forbidden); do it by hand, or fix"
     " its settings."),
    (Kind.GRAFANA, "icbot", wording.data(refused="grafana: 401", resolution="r1",
                                         where="pay-overview", why="invalid token"),
     "Grafana refused the annotation on `pay-overview` (invalid token), so the impact window is"
     " not annotated: check GRAFANA_TOKEN and the playbooks' dashboard uids."),
    (Kind.SLACK_UNREACHABLE, "icbot", wording.data(since="2026-12-07T21:05:09+00:00"),
     "Slack unreachable since 21:05:09 UTC, notifying by email."),
    (Kind.SLACK_REACHABLE, "icbot", wording.data(since="2026-12-07T21:05:09+00:00",
                                                 lasted_s=725.4),
     "Slack reachable again (unreachable since 21:05:09 UTC, 12m): no more email."),
    (Kind.DIAGNOSIS, U1, wording.data(
        playbook="db-pool", title="DB pool saturated?", verdict="1 critical, 1 normal",
        worst="critical", elapsed_ms=40, steps=[], reminder=None, remediations=[],
        escalation=None,
        findings=[
            {"id": "pool", "title": "Pool in use", "check": "sql", "band": "critical",
             "value": 97.25, "unit": "%", "detail": "97 of 100", "threshold": None,
             "elapsed_ms": 3},
            {"id": "lag", "title": "Replica lag", "check": "sql", "band": "normal",
             "value": 1.5, "unit": "s", "detail": "fine", "threshold": None, "elapsed_ms": 3},
            {"id": "logs", "title": "Errors", "check": "logs", "band": "no data", "value": None,
             "unit": "", "detail": "no logs", "threshold": None, "elapsed_ms": 3},
        ]),
     "Diagnosis `db-pool` (DB pool saturated?): 1 critical, 1 normal\n"
     "• Pool in use = 97.2% [critical] 97 of 100\n"
     "• Replica lag = 1.5 s [normal] fine\n"
     "• Errors [no data] no logs"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "actor", "data", "v1"), REMAINING, ids=lambda v: str(v)[:24])
def test_remaining_kinds_store_the_words_v1_stored_and_render_in_each_flavour(
    kind: Kind, actor: str, data: dict[str, Any], v1: str
) -> None:
    # One deliberate change: "3 updates", not v1's "3 update(s)" (issue 22's plurals).
    assert wording.stored_text(kind, actor=actor, incident_id=1, data=data) == v1
    entry = _entry(kind, actor, data, text=v1)
    assert wording.entry_text(entry, Flavour.SLACK) == inert(v1)
    markdown = wording.entry_text(entry, Flavour.MARKDOWN)
    text = wording.entry_text(entry, Flavour.PLAIN)
    assert markdown and text
    assert not re.search(r"[*`]|<@|<!|:[a-z_]+:", text), text
    assert "<!" not in markdown, markdown
