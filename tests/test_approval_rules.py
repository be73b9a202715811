"""Approvals that cannot be gamed (issue 16): who may approve, against what state, for how long.

Scenario tests through the real app: signed requests in, the Kubernetes stand-in changed
between the request and the click.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.core.ids import ApprovalAction
from sandbox.kubernetes import FakeKubernetes
from sandbox.slack_api import FakeSlack
from tests import test_approvals as base
from tests.conftest import Bot, running_bot, shown_text
from tests.test_approvals import DEPLOY, NS, _card, _click, _policy, _request_rollback

kube = base.kube  # the fixtures /rollback's tests use: payment-service at revision 3
rbot = base.rbot

Kube = tuple[FakeKubernetes, Path]
GUARDED = (
    "remediations:\n  rollback_deployment: {approvers: [incident_commander, role:security lead]}\n"
)


def _image(fake: FakeKubernetes) -> str:
    return str(fake.deployment(NS, DEPLOY)["spec"]["template"]["spec"]["containers"][0]["image"])


async def _status(bot: Bot, pending: str) -> str:
    [row] = await bot.fetch("SELECT status FROM pending_actions WHERE id = $1", int(pending))
    return str(row["status"])


def _assign(bot: Bot, user: str, role: str) -> str:
    return f"assign <@{bot.user(user)}|{user}> {role}"


# -- eligibility is fixed when the request is made --------------------------------------------


async def test_a_role_assigned_to_oneself_does_not_meet_a_role_rule(
    dsn: str, slack: FakeSlack, kube: Kube, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, GUARDED)
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10
    ) as bot:
        pending = await _request_rollback(bot)
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, pending))
        assert "Only the incident commander or the security lead" in bot.last_reply("dana")
        await bot.command(_assign(bot, "dana", "security-lead"), user="dana")
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, pending))
        assert "you assigned yourself security lead" in bot.last_reply("dana")
        await bot.command(_assign(bot, "dana", "ic"), user="dana")
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, pending))
        assert await _status(bot, pending) == "pending"
        assert kube[0].calls_to("deployments", "patch") == []


async def test_becoming_incident_commander_after_the_request_does_not_count(
    dsn: str, slack: FakeSlack, kube: Kube, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, GUARDED)
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10
    ) as bot:
        pending = await _request_rollback(bot)
        await bot.command(_assign(bot, "kim", "ic"), user="alice")  # given by someone else
        await bot.post_signed(_click(bot, "kim", ApprovalAction.APPROVE, pending))
        assert "you became incident commander after this was requested" in bot.last_reply("kim")
        assert await _status(bot, pending) == "pending"


async def test_a_role_given_by_someone_else_before_the_request_counts(
    dsn: str, slack: FakeSlack, kube: Kube, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, GUARDED)
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10
    ) as bot:
        await bot.command("declare Payments failing sev1", user="alice")
        await bot.command(_assign(bot, "dana", "security-lead"), user="alice")
        await bot.post_signed(bot.command_request(DEPLOY, command="/rollback", user="bob"))
        [row] = await bot.fetch("SELECT id FROM pending_actions")
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, str(row["id"])))
        assert await _status(bot, str(row["id"])) == "succeeded"


async def test_the_declarer_is_incident_commander_for_every_later_request(
    dsn: str, slack: FakeSlack, kube: Kube, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, GUARDED)
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10
    ) as bot:
        await bot.command("declare Payments failing sev1", user="erin")
        await bot.post_signed(bot.command_request(DEPLOY, command="/rollback", user="bob"))
        [row] = await bot.fetch("SELECT id FROM pending_actions")
        await bot.post_signed(_click(bot, "erin", ApprovalAction.APPROVE, str(row["id"])))
        assert await _status(bot, str(row["id"])) == "succeeded"


async def test_a_role_lost_after_the_request_no_longer_counts(
    dsn: str, slack: FakeSlack, kube: Kube, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, GUARDED)
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10
    ) as bot:
        await bot.command("declare Payments failing sev1", user="alice")
        await bot.command(_assign(bot, "dana", "security-lead"), user="alice")
        await bot.post_signed(bot.command_request(DEPLOY, command="/rollback", user="bob"))
        [row] = await bot.fetch("SELECT id FROM pending_actions")
        await bot.command(_assign(bot, "kim", "security-lead"), user="alice")
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, str(row["id"])))
        assert "Only the incident commander or the security lead" in bot.last_reply("dana")
        await bot.post_signed(_click(bot, "kim", ApprovalAction.APPROVE, str(row["id"])))
        assert "you became security lead after this was requested" in bot.last_reply("kim")
        assert await _status(bot, str(row["id"])) == "pending"


# -- approve what you saw ---------------------------------------------------------------------


async def _wait_for_revision(fake: FakeKubernetes, number: int) -> None:
    for _ in range(500):
        revisions = [
            rs["metadata"]["annotations"].get("deployment.kubernetes.io/revision")
            for rs in fake.replicasets(NS, DEPLOY)
        ]
        if str(number) in revisions:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"revision {number} never appeared")


async def test_a_rollback_whose_deployment_changed_since_the_preview_does_not_run(
    rbot: Bot, kube: Kube
) -> None:
    fake, _ = kube
    pending = await _request_rollback(rbot)
    fake.set_image(NS, DEPLOY, "payments:1.5.0")  # someone deploys 1.5.0 (revision 4)
    await _wait_for_revision(fake, 4)
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    assert _image(fake) == "payments:1.5.0"  # nothing was rolled back
    assert not [c for c in fake.calls_to("deployments", "patch") if "json-patch" in c.content_type]
    assert await _status(rbot, pending) == "changed"
    card = shown_text(_card(rbot))
    assert "now revision 4 (`payments:1.5.0`)" in card
    assert "this request was for revision 3 (`payments:1.4.2`)" in card
    assert "Approve" not in card and "Request again" in card
    [entry] = await rbot.fetch("SELECT text, data FROM timeline WHERE data ? 'changed'")
    assert "now revision 4" in entry["text"]
    assert "changed" in rbot.last_reply("dana")


async def test_request_again_makes_a_fresh_request_with_a_fresh_preview(
    rbot: Bot, kube: Kube
) -> None:
    fake, _ = kube
    pending = await _request_rollback(rbot)
    fake.set_image(NS, DEPLOY, "payments:1.5.0")
    await _wait_for_revision(fake, 4)
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.REQUEST_AGAIN, pending))
    rows = await rbot.fetch("SELECT id, status, preview, requested_by FROM pending_actions")
    assert len(rows) == 2
    fresh = rows[1]
    assert fresh["status"] == "pending" and fresh["requested_by"] == rbot.user("dana")
    assert fresh["preview"]["current"]["revision"] == 4
    assert "from revision 4: `payments:1.5.0`" in shown_text(_card(rbot))
    await rbot.post_signed(_click(rbot, "erin", ApprovalAction.APPROVE, str(fresh["id"])))
    [row] = await rbot.fetch("SELECT result FROM pending_actions WHERE id = $1", fresh["id"])
    assert "to revision 3" in row["result"]["summary"]  # it ran (1.4.2 crashloops: not verified)
    assert _image(fake) == "payments:1.4.2"  # back to the revision before 1.5.0


async def test_a_restart_runs_when_nothing_changed_since_the_preview(rbot: Bot, kube: Kube) -> None:
    await rbot.command("declare Payments failing sev1", user="alice")
    pending = await rbot.services.approvals.propose(
        ref=None, action="restart_deployment", params={"namespace": NS, "deployment": DEPLOY},
        label="Restart payments", actor=rbot.user("alice"),
    )  # fmt: skip
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, str(pending.id)))
    [row] = await rbot.fetch("SELECT status FROM pending_actions")
    assert row["status"] in ("succeeded", "failed")  # ran (1.4.2 crashloops: not verified)
    template = kube[0].deployment(NS, DEPLOY)["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" in (template.get("annotations") or {})


# -- requests end with their incident ---------------------------------------------------------


async def test_resolving_cancels_pending_requests_and_later_clicks_are_refused(
    rbot: Bot, kube: Kube
) -> None:
    pending = await _request_rollback(rbot)
    await rbot.command("resolve Fixed by hand", user="alice")
    assert await _status(rbot, pending) == "cancelled"
    assert "Cancelled: INC-1 was resolved" in shown_text(_card(rbot))
    assert "Approve" not in shown_text(_card(rbot))
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    assert "cancelled" in rbot.last_reply("dana")
    await rbot.services.incidents.reopen(1, actor="pagerduty", reason="it came back")
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    assert "cancelled" in rbot.last_reply("dana")
    assert await _status(rbot, pending) == "cancelled"
    assert kube[0].calls_to("deployments", "patch") == []


# -- Kubernetes the way kubectl does it -------------------------------------------------------


async def test_a_paused_deployment_is_refused_in_the_preview_with_how_to_resume(
    rbot: Bot, kube: Kube
) -> None:
    fake, _ = kube
    fake.pause(NS, DEPLOY)
    await rbot.command("declare Payments failing sev1", user="alice")
    await rbot.post_signed(rbot.command_request(DEPLOY, command="/rollback", user="alice"))
    assert await rbot.fetch("SELECT id FROM pending_actions") == []  # refused: no request
    reply = rbot.last_reply("alice")
    assert "is paused" in reply and f"kubectl rollout resume deployment/{DEPLOY} -n {NS}" in reply
    with pytest.raises(Exception, match="is paused"):
        await rbot.services.approvals.propose(
            ref=None, action="restart_deployment", params={"namespace": NS, "deployment": DEPLOY},
            label="Restart payments", actor=rbot.user("alice"),
        )  # fmt: skip
    assert fake.calls_to("deployments", "patch") == []


async def test_a_deployment_paused_after_the_preview_is_not_restarted(
    rbot: Bot, kube: Kube
) -> None:
    fake, _ = kube
    await rbot.command("declare Payments failing sev1", user="alice")
    pending = await rbot.services.approvals.propose(
        ref=None, action="restart_deployment", params={"namespace": NS, "deployment": DEPLOY},
        label="Restart payments", actor=rbot.user("alice"),
    )  # fmt: skip
    fake.pause(NS, DEPLOY)
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, str(pending.id)))
    assert await _status(rbot, str(pending.id)) == "changed"
    assert "is paused" in shown_text(_card(rbot))
    template = fake.deployment(NS, DEPLOY)["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" not in (template.get("annotations") or {})


async def test_replicasets_with_unreadable_revisions_are_skipped(rbot: Bot, kube: Kube) -> None:
    fake, _ = kube
    oldest = min(
        fake.replicasets(NS, DEPLOY),
        key=lambda rs: int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]),
    )
    fake.annotate_replicaset(
        NS, oldest["metadata"]["name"], "deployment.kubernetes.io/revision", "not-a-number"
    )
    await rbot.post_signed(
        rbot.command_request(f"{DEPLOY} --history", command="/rollback", user="alice")
    )
    reply = rbot.last_reply("alice")
    assert "revision 3: `payments:1.4.2` ← current" in reply and "revision 2" in reply
    assert "payments:1.4.0" not in reply


async def test_the_namespace_defaults_to_kube_namespace_then_the_kubeconfig_context(
    dsn: str, slack: FakeSlack, kube: Kube, tmp_path: Path
) -> None:
    fake, _ = kube
    fake.add_deployment("staging", DEPLOY, "payments:0.9", history=["payments:0.8"])
    in_default = fake.write_kubeconfig(tmp_path / "default-ns", namespace="default")
    in_staging = fake.write_kubeconfig(tmp_path / "staging-ns", namespace="staging")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"kubeconfig": in_staging}, "staging/payment-service"),
        ({"kubeconfig": in_default, "kube_namespace": NS}, "waqiti/payment-service"),
        ({"kubeconfig": in_staging, "kube_namespace": NS}, "waqiti/payment-service"),
    ]
    for settings, shown in cases:
        async with running_bot(dsn, slack, verify_timeout_seconds=10, **settings) as bot:
            await bot.post_signed(
                bot.command_request(f"{DEPLOY} --history", command="/rollback", user="alice")
            )
            assert f"`{shown}`" in bot.last_reply("alice"), settings


def test_the_default_namespace_is_chosen_as_kubectl_chooses_it(kube: Kube, tmp_path: Path) -> None:
    from bot.integrations.kubernetes import default_namespace

    fake, _ = kube
    config = fake.write_kubeconfig(tmp_path / "config", namespace="staging")
    no_context_ns = fake.write_kubeconfig(tmp_path / "bare", namespace="")
    pod = tmp_path / "serviceaccount-namespace"
    pod.write_text("icbot\n")
    missing = tmp_path / "missing"
    assert default_namespace("waqiti", config, service_account=pod) == "waqiti"
    assert default_namespace(None, config, service_account=pod) == "staging"
    assert default_namespace(None, no_context_ns, service_account=missing) == "default"
    assert default_namespace(None, None, service_account=pod) == "icbot"  # in a pod
    assert default_namespace("", None, service_account=missing) == "default"


def test_the_deploy_manifests_set_kube_namespace_to_waqiti() -> None:
    import yaml

    from tests.conftest import REPO

    found = []
    for path in (REPO / "deploy").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                found.append((doc.get("data") or {}).get("KUBE_NAMESPACE"))
    assert "waqiti" in found


# -- one change per target at a time ----------------------------------------------------------


async def test_two_approved_changes_to_one_deployment_on_two_replicas_run_one(
    dsn: str, slack: FakeSlack, kube: Kube
) -> None:
    fake, config = kube
    async with (
        running_bot(dsn, slack, kubeconfig=config, verify_timeout_seconds=10) as one,
        running_bot(dsn, slack, kubeconfig=config, verify_timeout_seconds=10) as two,
    ):
        await one.command("declare Payments failing sev1", user="alice")
        requests = []
        for action, label in (
            ("rollback_deployment", "Roll back payments"),
            ("restart_deployment", "Restart payments"),
        ):
            requests.append(
                await one.services.approvals.propose(
                    ref=None,
                    action=action,
                    params={"namespace": NS, "deployment": DEPLOY},
                    label=label,
                    actor=one.user("alice"),
                )
            )
        fake.fail("deployments", verb="patch", status=None, delay=1.5)  # the first write is slow
        clicks = [
            bot.post(_click(one, name, ApprovalAction.APPROVE, str(p.id)))
            for bot, name, p in ((one, "dana", requests[0]), (two, "erin", requests[1]))
        ]
        await asyncio.gather(*clicks)
        await one.settle()
        await two.settle()
        rows = await one.fetch("SELECT id, label, status, result FROM pending_actions ORDER BY id")
        ran = [r for r in rows if "running on" not in str(r["result"])]
        refused = [r for r in rows if "running on" in str(r["result"])]
        assert len(ran) == 1 and len(refused) == 1, rows
        why = refused[0]["result"]["summary"]
        assert f"request #{ran[0]['id']}" in why and ran[0]["label"] in why
        assert len(fake.calls_to("deployments", "patch")) == 1


# -- a run left behind by a dead process ------------------------------------------------------


async def test_a_run_whose_process_died_is_reported_within_about_a_minute(
    rbot: Bot, kube: Kube
) -> None:
    first = int(await _request_rollback(rbot))
    copy = """INSERT INTO pending_actions (incident_id, action, label, params, preview,
                  requested_by, requested_at, expires_at, required, approvers, entry_id)
              SELECT incident_id, action, label, params, preview, requested_by, requested_at,
                  expires_at, required, approvers, entry_id
              FROM pending_actions WHERE id = $1 RETURNING id"""
    async with rbot.services.pool.acquire() as conn:
        alive = await conn.fetchval(copy, first)
        # Died 70 seconds ago, a minute into a run (its heartbeat stopped then) ...
        await conn.execute(
            "UPDATE pending_actions SET status = 'running', approvals = '[\"U9\"]',"
            " decided_by = 'U9', started_at = now() - interval '2 minutes',"
            " heartbeat_at = now() - interval '70 seconds' WHERE id = $1",
            first,
        )
        # ... while this one's process still beats.
        await conn.execute(
            "UPDATE pending_actions SET status = 'running', started_at = now() - interval"
            " '9 minutes', heartbeat_at = now() WHERE id = $1",
            alive,
        )
    assert await rbot.services.approvals.fail_interrupted() == 1
    rows = {r["id"]: r for r in await rbot.fetch("SELECT id, status, result FROM pending_actions")}
    assert rows[first]["status"] == "failed" and rows[alive]["status"] == "running"
    summary = rows[first]["result"]["summary"]
    assert summary == "interrupted: the bot restarted; effect unknown, check before retrying"
    await rbot.settle()
    card = shown_text(next(m for m in rbot.thread(1) if "requests *" in str(m.blocks)))
    assert ":x: Failed" in card and "by <@U9>" not in card  # no approver named as the cause


async def test_a_long_run_keeps_its_heartbeat_and_is_not_taken_for_dead(
    rbot: Bot, kube: Kube
) -> None:
    from datetime import timedelta

    fake, _ = kube
    approvals = rbot.services.approvals
    approvals.lease = timedelta(seconds=1)  # beats every 0.25 s; dead after 1 s without one
    pending = await _request_rollback(rbot)
    fake.fail("deployments", verb="patch", status=None, delay=3.0)  # a slow rollback
    click = asyncio.create_task(
        rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    )
    for _ in range(1000):
        if await _status(rbot, pending) == "running":
            break
        await asyncio.sleep(0.01)
    for _ in range(5):  # 2.5 s of a 3 s write: longer than the lease, alive all along
        await asyncio.sleep(0.5)
        assert await approvals.fail_interrupted() == 0
    await click
    assert await _status(rbot, pending) == "succeeded"


# -- every click gets an answer ---------------------------------------------------------------


async def test_an_approve_click_while_postgresql_is_down_gets_the_error_reply(
    rbot: Bot, pg_server: Any
) -> None:
    pending = await _request_rollback(rbot)
    await rbot.services.pool.close()  # the database is gone for this process
    status, _ = await rbot.post(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    await rbot.services.inflight.idle()
    assert status == 200
    assert "Something went wrong on my side (error id" in rbot.last_reply("dana")


# -- the "Which incident?" picker works for every command -------------------------------------


def _buttons(message: Any) -> list[dict[str, Any]]:
    return [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


async def _pick(bot: Bot, user: str, button: dict[str, Any]) -> None:
    uid = bot.user(user)
    click = bot.requests.block_action(
        action_id=button["action_id"], value=button["value"], label=button["text"]["text"],
        block_id="b1", user_id=uid, user_name=user, channel_id=bot.channel,
        channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=uid),
    )  # fmt: skip
    await bot.post_signed(click)


async def test_the_incident_picker_runs_rollback_on_the_chosen_incident(rbot: Bot) -> None:
    await rbot.command("declare First sev2", user="alice")
    await rbot.command("declare Second sev3", user="alice")
    await rbot.post_signed(rbot.command_request(DEPLOY, command="/rollback", user="alice"))
    buttons = _buttons(rbot.slack.ephemerals[-1])
    assert [b["text"]["text"] for b in buttons] == ["INC-1 First", "INC-2 Second"]
    await _pick(rbot, "alice", buttons[1])
    rows = await rbot.fetch("SELECT incident_id, action FROM pending_actions")
    assert [(r["incident_id"], r["action"]) for r in rows] == [(2, "rollback_deployment")]
    assert "not a command I know" not in rbot.last_reply("alice")


async def test_the_incident_picker_runs_diagnose_on_the_chosen_incident(
    dsn: str, slack: FakeSlack, kube: Kube
) -> None:
    async with running_bot(dsn, slack, kubeconfig=kube[1], verify_timeout_seconds=10) as bot:
        await bot.command("declare First sev2", user="alice")
        await bot.command("declare Second sev3", user="alice")
        await bot.post_signed(bot.command_request("saga", command="/diagnose", user="alice"))
        buttons = _buttons(bot.slack.ephemerals[-1])
        await _pick(bot, "alice", buttons[0])
        assert "Diagnosis `saga` posted in *INC-1*" in bot.last_reply("alice")
        assert "diagnosis" in [
            r["kind"] for r in await bot.fetch("SELECT kind FROM timeline WHERE incident_id = 1")
        ]


async def test_the_incident_picker_keeps_a_long_note_whole(bot: Bot) -> None:
    await bot.command("declare First sev2", user="alice")
    await bot.command("declare Second sev3", user="alice")
    long_note = "word " * 590  # ~2,950 characters: more than a button value holds
    await bot.command(f"note {long_note}", user="alice")
    buttons = _buttons(bot.slack.ephemerals[-1])
    assert all(len(b["value"]) <= 2000 for b in buttons)
    await _pick(bot, "alice", buttons[1])
    [row] = await bot.fetch("SELECT data FROM timeline WHERE kind = 'note'")
    assert row["data"]["text"] == long_note.strip()


async def test_an_unanswered_which_incident_question_is_forgotten_after_a_day(bot: Bot) -> None:
    await bot.command("declare First sev2", user="alice")
    await bot.command("declare Second sev3", user="alice")
    await bot.command("note a note nobody placed", user="alice")
    buttons = _buttons(bot.slack.ephemerals[-1])
    assert len(await bot.fetch("SELECT id FROM incident_choices")) == 1
    bot.clock.advance(hours=23)
    await bot.tick()  # the timer loop prunes as one of its chores
    assert len(await bot.fetch("SELECT id FROM incident_choices")) == 1
    bot.clock.advance(hours=2)
    await bot.tick()
    assert await bot.fetch("SELECT id FROM incident_choices") == []
    await _pick(bot, "alice", buttons[0])
    assert "That button is no longer valid; run the command again." in bot.last_reply("alice")
    assert await bot.fetch("SELECT id FROM timeline WHERE kind = 'note'") == []


# -- Vault paths as the runbook writes them ---------------------------------------------------


@pytest.fixture(scope="module")
async def bao() -> Any:
    from sandbox.vault_server import OpenBaoDevServer

    server = OpenBaoDevServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_a_secret_named_as_the_vault_cli_names_it_is_rotated(
    dsn: str, slack: FakeSlack, bao: Any
) -> None:
    await bao.put_secret("alerting/pagerduty", {"token": "old-token-value"})
    async with running_bot(
        dsn, slack, vault_addr=bao.addr, vault_token=bao.root_token, verify_timeout_seconds=10
    ) as bot:
        await bot.command("declare Pager token leaked sev1", user="alice")
        pending = await bot.services.approvals.propose(
            ref=None, action="rotate_secret", label="Rotate the PagerDuty token",
            params={"path": "secret/alerting/pagerduty", "key": "token"}, actor=bot.user("bob"),
        )  # fmt: skip
        assert "write version 2" in " ".join(pending.preview["lines"])
        # rotate_secret needs the incident commander (alice, since declaring) or security lead
        await bot.post_signed(_click(bot, "alice", ApprovalAction.APPROVE, str(pending.id)))
        [row] = await bot.fetch("SELECT status, result FROM pending_actions")
        assert row["status"] == "succeeded", row["result"]
        assert "version 1 → 2" in row["result"]["summary"]


async def test_a_secret_rotated_by_hand_after_the_preview_is_not_rotated_again(
    dsn: str, slack: FakeSlack, bao: Any
) -> None:
    await bao.put_secret("alerting/opsgenie", {"token": "first"})
    async with running_bot(
        dsn, slack, vault_addr=bao.addr, vault_token=bao.root_token, verify_timeout_seconds=10
    ) as bot:
        await bot.command("declare Token leaked sev1", user="alice")
        pending = await bot.services.approvals.propose(
            ref=None, action="rotate_secret", label="Rotate the token",
            params={"path": "secret/alerting/opsgenie", "key": "token"}, actor=bot.user("bob"),
        )  # fmt: skip
        await bao.put_secret("alerting/opsgenie", {"token": "rotated-by-hand"})  # version 2
        await bot.post_signed(_click(bot, "alice", ApprovalAction.APPROVE, str(pending.id)))
        [row] = await bot.fetch("SELECT status FROM pending_actions")
        assert row["status"] == "changed"
        card = shown_text(_card(bot))
        assert "now version 2" in card and "this request was for version 1" in card


# -- property: an approval counts only from someone who held the role at request time ---------

from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from bot.core.errors import Conflict  # noqa: E402
from bot.core.models import IC  # noqa: E402

PEOPLE = ("alice", "dana", "erin", "kim")
ROLES = (IC, "security lead")
_step = st.one_of(
    st.tuples(
        st.sampled_from(("assign", "handover")),
        st.sampled_from(ROLES),
        st.sampled_from(PEOPLE),
        st.sampled_from(PEOPLE),
    ),
    st.tuples(st.just("click"), st.sampled_from(PEOPLE)),
)


@pytest.fixture
async def guarded_bot(dsn: str, slack: FakeSlack, kube: Kube, tmp_path: Path) -> Any:
    policy = _policy(tmp_path, GUARDED)
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10
    ) as bot:
        yield bot


@given(
    before=st.lists(_step, max_size=5),
    after=st.lists(_step, min_size=1, max_size=8),
)
@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_an_approval_counts_only_from_someone_who_held_the_role_at_request_time(
    guarded_bot: Bot, before: list[tuple[str, ...]], after: list[tuple[str, ...]]
) -> None:
    bot = guarded_bot
    incidents, approvals = bot.services.incidents, bot.services.approvals
    change = await incidents.declare(title="Property", severity="sev2", actor="alice")
    number = change.incident.id
    # role -> (holder, step it was given at, given to themselves and not by declaring)
    held: dict[str, tuple[str, int, bool]] = {IC: ("alice", -1, False)}
    steps = [*before, ("request",), *after]
    requested_at = len(before)
    pending = None
    for i, step in enumerate(steps):
        bot.clock.advance(milliseconds=5)
        if step[0] in ("assign", "handover"):
            _, role, user, actor = step
            if held.get(role, ("",))[0] == user:
                continue  # already theirs: refused, nothing changes
            give = incidents.assign if step[0] == "assign" else incidents.handover
            await give(ref=number, user=user, role=role, actor=actor)
            held[role] = (user, i, user == actor)
        elif step[0] == "request":
            pending = await approvals.propose(
                ref=number, action="rollback_deployment", label="Roll back",
                params={"namespace": NS, "deployment": DEPLOY}, actor="bob",
            )  # fmt: skip
        elif pending is not None:
            user = step[1]
            allowed = any(
                holder == user and since < requested_at and not self_given
                for holder, since, self_given in held.values()
            )
            try:
                decision = await approvals.decide(pending.id, user=user, approve=True)
            except Conflict:
                assert not allowed, (steps[: i + 1], held)
                continue
            assert allowed and decision.action.status == "approved", (steps[: i + 1], held)
            return  # approved: later clicks are refused as "already approved"
