"""Remediations behind approvals: /rollback through the real app and the real clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.core import wording
from bot.core.errors import UserError
from bot.core.ids import ApprovalAction, RemediationAction
from bot.core.settings import BUNDLED_PLAYBOOKS
from bot.core.wording import Flavour
from sandbox.kubernetes import FakeKubernetes
from sandbox.slack_api import FakeSlack
from tests.conftest import Bot, running_bot

NS, DEPLOY = "waqiti", "payment-service"


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[tuple[FakeKubernetes, Path]]:
    async with FakeKubernetes(tick_interval=0.02) as fake:
        fake.add_deployment(
            NS, DEPLOY, "payments:1.4.2", replicas=3, history=["payments:1.4.0", "payments:1.4.1"]
        )
        fake.set_image_behaviour("payments:1.4.2", crashloop=True)
        yield fake, fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)


def _policy(tmp_path: Path, approvals: str) -> Path:
    folder = tmp_path / "policy"
    folder.mkdir(exist_ok=True)
    (folder / "severities.yml").write_text((BUNDLED_PLAYBOOKS / "severities.yml").read_text())
    (folder / "saga.yml").write_text((BUNDLED_PLAYBOOKS / "saga.yml").read_text())
    (folder / "approvals.yml").write_text(approvals)
    return folder


@pytest.fixture
async def rbot(dsn: str, slack: FakeSlack, kube: tuple[FakeKubernetes, Path]) -> AsyncIterator[Bot]:
    async with running_bot(dsn, slack, kubeconfig=kube[1], verify_timeout_seconds=10) as bot:
        yield bot


def _card(bot: Bot) -> Any:
    return next(m for m in reversed(bot.thread(1)) if "requests *" in str(m.blocks))


def _click(bot: Bot, user: str, action: str, value: str) -> Any:
    uid = bot.user(user)
    return bot.requests.block_action(
        action_id=action, value=value, label=action, block_id="approval", user_id=uid,
        user_name=user, channel_id=bot.channel, channel_name="waqiti-incidents",
        response_url=bot.slack.new_response_url(channel=bot.channel, user=uid),
    )  # fmt: skip


async def _request_rollback(bot: Bot, text: str = DEPLOY) -> str:
    await bot.command("declare Payments failing sev1", user="alice")
    await bot.post_signed(bot.command_request(text, command="/rollback", user="alice"))
    rows = await bot.fetch("SELECT id FROM pending_actions ORDER BY id DESC LIMIT 1")
    return str(rows[0]["id"])


async def test_rollback_approved_by_a_second_user_restores_the_previous_template(
    rbot: Bot, kube: tuple[FakeKubernetes, Path]
) -> None:
    fake, _ = kube
    pending = await _request_rollback(rbot)
    card = str(_card(rbot).blocks)
    assert "from revision 3: `payments:1.4.2`" in card and "to revision 2: `payments:1.4.1`" in card
    assert (
        fake.deployment(NS, DEPLOY)["spec"]["template"]["spec"]["containers"][0]["image"]
        == "payments:1.4.2"
    )
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    deployment = fake.deployment(NS, DEPLOY)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "payments:1.4.1"
    assert fake.rollout_status(NS, DEPLOY).done
    row = (await rbot.fetch("SELECT status, result FROM pending_actions"))[0]
    assert (
        row["status"] == "succeeded" and "successfully rolled out" in row["result"]["verification"]
    )
    kinds = await rbot.kinds()
    for kind in ("approval_requested", "approved", "remediation_started", "remediation_result"):
        assert kind in kinds
    assert "Done and verified" in str(_card(rbot).blocks)  # the card was updated in place
    assert "Approve" not in str(_card(rbot).blocks)
    assert (await rbot.services.incidents.verify(1)).ok


async def test_the_requester_cannot_approve_their_own_request(rbot: Bot) -> None:
    pending = await _request_rollback(rbot)
    await rbot.post_signed(_click(rbot, "alice", ApprovalAction.APPROVE, pending))
    assert "someone else has to approve" in rbot.replies_to("alice")[-1]
    assert (await rbot.fetch("SELECT status FROM pending_actions"))[0]["status"] == "pending"


async def test_a_second_click_after_approval_is_refused_and_runs_nothing_twice(
    rbot: Bot, kube: tuple[FakeKubernetes, Path]
) -> None:
    pending = await _request_rollback(rbot)
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    patches = len(kube[0].calls_to("deployments", "patch"))
    await rbot.post_signed(_click(rbot, "erin", ApprovalAction.APPROVE, pending))
    assert "already succeeded" in rbot.replies_to("erin")[-1]
    assert len(kube[0].calls_to("deployments", "patch")) == patches


async def test_twenty_concurrent_clicks_on_two_app_instances_run_the_action_once(
    dsn: str, slack: FakeSlack, kube: tuple[FakeKubernetes, Path]
) -> None:
    fake, config = kube
    async with (
        running_bot(dsn, slack, kubeconfig=config, verify_timeout_seconds=10) as one,
        running_bot(dsn, slack, kubeconfig=config, verify_timeout_seconds=10) as two,
    ):
        pending = await _request_rollback(one)
        clicks = [
            (one if n % 2 else two).post(_click(one, f"user{n}", ApprovalAction.APPROVE, pending))
            for n in range(20)
        ]
        statuses = await asyncio.gather(*clicks)
        assert all(status == 200 for status, _ in statuses)
        await one.settle()
        await two.settle()
        undo = [c for c in fake.calls_to("deployments", "patch") if "json-patch" in c.content_type]
        assert len(undo) == 1
        row = (await one.fetch("SELECT status, approvals FROM pending_actions"))[0]
        assert row["status"] == "succeeded" and len(row["approvals"]) == 1


async def test_deny_ends_the_request_and_nothing_runs(
    rbot: Bot, kube: tuple[FakeKubernetes, Path]
) -> None:
    pending = await _request_rollback(rbot)
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.DENY, pending))
    await rbot.post_signed(_click(rbot, "erin", ApprovalAction.APPROVE, pending))
    assert "already denied by" in rbot.replies_to("erin")[-1]
    assert kube[0].calls_to("deployments", "patch") == []
    assert "denied" in str(_card(rbot).blocks).lower()


async def test_an_expired_request_cannot_be_approved(
    rbot: Bot, kube: tuple[FakeKubernetes, Path]
) -> None:
    pending = await _request_rollback(rbot)
    rbot.clock.advance(minutes=16)
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    assert "expired" in rbot.replies_to("dana")[-1]
    await rbot.tick()  # the sweeper records it and updates the card
    assert (await rbot.fetch("SELECT status FROM pending_actions"))[0]["status"] == "expired"
    assert "approval_expired" in await rbot.kinds()
    assert kube[0].calls_to("deployments", "patch") == []


async def test_wrong_role_is_refused_and_two_approver_rule_needs_two_people(
    dsn: str, slack: FakeSlack, kube: tuple[FakeKubernetes, Path], tmp_path: Path
) -> None:
    policy = _policy(
        tmp_path,
        "remediations:\n  rollback_deployment: {approvers: [role:scribe, role:dba], required: 2}\n",
    )
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10
    ) as bot:
        await bot.command("declare Payments failing sev1", user="alice")
        # Roles count for a request only if held when it was made (and not self-assigned).
        await bot.command(f"assign <@{bot.user('dana')}|dana> scribe", user="alice")
        await bot.command(f"assign <@{bot.user('kim')}|kim> dba", user="alice")
        await bot.post_signed(bot.command_request(DEPLOY, command="/rollback", user="alice"))
        pending = str((await bot.fetch("SELECT id FROM pending_actions"))[0]["id"])
        await bot.post_signed(_click(bot, "erin", ApprovalAction.APPROVE, pending))
        assert "Only the scribe or the dba may decide" in bot.replies_to("erin")[-1]
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, pending))
        assert "1 of 2" in bot.replies_to("dana")[-1]
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, pending))
        assert "already approved" in bot.replies_to("dana")[-1]
        assert kube[0].calls_to("deployments", "patch") == []
        await bot.post_signed(_click(bot, "kim", ApprovalAction.APPROVE, pending))
        row = (await bot.fetch("SELECT status, approvals FROM pending_actions"))[0]
        assert row["status"] == "succeeded" and len(row["approvals"]) == 2


async def test_unknown_deployment_and_revision_are_refused_with_a_clear_message(rbot: Bot) -> None:
    await rbot.command("declare Payments failing sev1", user="alice")
    await rbot.post_signed(rbot.command_request("ghost-service", command="/rollback", user="alice"))
    assert "no deployment `ghost-service`" in rbot.last_reply("alice")
    await rbot.post_signed(rbot.command_request(f"{DEPLOY} 9", command="/rollback", user="alice"))
    assert "no revision 9; revisions: 3, 2, 1" in rbot.last_reply("alice")
    assert await rbot.fetch("SELECT * FROM pending_actions") == []


async def test_a_rollback_refusal_names_the_deployment_as_a_piece_not_as_slack_markup(
    rbot: Bot,
) -> None:
    await rbot.command("declare Payments failing sev1", user="alice")
    for params, plain in [
        ({"namespace": "ghost", "deployment": DEPLOY},
         f"There is no deployment {DEPLOY} in namespace ghost."),
        ({"namespace": NS, "deployment": DEPLOY, "revision": 9},
         f"{DEPLOY} has no revision 9; revisions: 3, 2, 1."),
        ({"namespace": NS, "deployment": DEPLOY, "revision": 3},
         f"{DEPLOY} is already at revision 3."),
    ]:  # fmt: skip
        with pytest.raises(UserError) as refused:
            await rbot.services.approvals.propose(
                ref=None,
                action="rollback_deployment",
                params=params,
                label="x",
                actor=rbot.user("alice"),
            )
        assert wording.Code(DEPLOY) in refused.value.said  # outside names are pieces
        assert refused.value.text(Flavour.PLAIN) == plain  # so plain text has no backticks
    assert await rbot.fetch("SELECT * FROM pending_actions") == []


async def test_rollback_history_lists_revisions_to_pick_from(rbot: Bot) -> None:
    await rbot.post_signed(
        rbot.command_request(f"{DEPLOY} --history", command="/rollback", user="alice")
    )
    reply = rbot.last_reply("alice")
    assert (
        "revision 3: `payments:1.4.2` ← current" in reply
        and "revision 1: `payments:1.4.0`" in reply
    )


async def test_rollback_to_a_named_revision(rbot: Bot, kube: tuple[FakeKubernetes, Path]) -> None:
    pending = await _request_rollback(rbot, f"{DEPLOY} 1")
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    image = kube[0].deployment(NS, DEPLOY)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "payments:1.4.0"


async def test_diagnose_remediation_buttons_go_through_the_same_flow(
    dsn: str, slack: FakeSlack, kube: tuple[FakeKubernetes, Path], tmp_path: Path
) -> None:
    async with running_bot(dsn, slack, kubeconfig=kube[1], verify_timeout_seconds=10) as bot:
        await bot.command("declare Payments failing sev1", user="alice")
        await bot.post_signed(bot.command_request("saga", command="/diagnose", user="alice"))
        report = bot.thread(1)[-1]
        restart = next(
            e for b in report.blocks if b["type"] == "actions" for e in b["elements"]
            if e.get("action_id", "").startswith(RemediationAction.REQUEST) and "Restart" in e["text"]["text"]
        )  # fmt: skip
        uid = bot.user("alice")
        click = bot.requests.block_action(
            action_id=restart["action_id"], value=restart["value"], label="Restart",
            block_id="r", user_id=uid, user_name="alice", channel_id=bot.channel,
            channel_name="waqiti-incidents",
            response_url=bot.slack.new_response_url(channel=bot.channel, user=uid),
        )  # fmt: skip
        await bot.post_signed(click)
        rows = await bot.fetch("SELECT id, action, status FROM pending_actions")
        assert [(r["action"], r["status"]) for r in rows] == [("restart_deployment", "pending")]
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, str(rows[0]["id"])))
        annotations = (
            kube[0].deployment(NS, DEPLOY)["spec"]["template"]["metadata"].get("annotations") or {}
        )
        assert "kubectl.kubernetes.io/restartedAt" in annotations


async def test_scaling_a_consumer_shows_its_lag_before_and_after(
    dsn: str, slack: FakeSlack, kube: tuple[FakeKubernetes, Path]
) -> None:
    from sandbox.kafka_broker import TansuBroker

    fake, config = kube
    fake.add_deployment(NS, "payment-saga-consumer", "saga-consumer:2.0", replicas=2)
    # New consumer pods take ~1 s to be ready, so the rollout (and the lag read after it)
    # comes after the consumers have caught up below, however busy the machine is.
    fake.set_image_behaviour("saga-consumer:2.0", ready_after=50)
    async with TansuBroker() as broker:
        await broker.create_topic("payment-events", partitions=2)
        await broker.produce("payment-events", 0, count=30)
        await broker.produce("payment-events", 1, count=20)
        await broker.commit("payment-saga", {("payment-events", 0): 10, ("payment-events", 1): 5})
        caught_up = asyncio.Event()

        def consumer_catches_up(kind: str, obj: dict[str, Any]) -> None:
            if obj.get("kind") == "Deployment" and obj["spec"].get("replicas") == 6:
                caught_up.set()

        fake.on_change.append(consumer_catches_up)
        async with running_bot(
            dsn, slack, kubeconfig=config, kafka_bootstrap_servers=broker.bootstrap,
            verify_timeout_seconds=10,
        ) as bot:  # fmt: skip
            await bot.command("declare Payments failing sev2", user="alice")
            pending = await bot.services.approvals.propose(
                ref=None, action="scale_deployment", label="Scale saga consumers",
                params={"namespace": NS, "deployment": "payment-saga-consumer", "replicas": 6,
                        "consumer_group": "payment-saga"},
                actor=bot.user("alice"),
            )  # fmt: skip
            assert "consumer group `payment-saga` lag now: 35" in pending.preview["lines"]

            async def catch_up() -> None:
                await caught_up.wait()
                await broker.commit(
                    "payment-saga", {("payment-events", 0): 30, ("payment-events", 1): 20}
                )

            helper = asyncio.create_task(catch_up())
            await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, str(pending.id)))
            await helper
            row = (await bot.fetch("SELECT status, result FROM pending_actions"))[0]
            assert row["status"] == "succeeded"
            assert "`payment-saga` lag 35 → 0" in row["result"]["verification"]
            assert fake.deployment(NS, "payment-saga-consumer")["spec"]["replicas"] == 6


async def test_the_pagerduty_on_call_may_approve_and_others_may_not(
    dsn: str, slack: FakeSlack, kube: tuple[FakeKubernetes, Path], tmp_path: Path
) -> None:
    from sandbox.pagerduty import FakePagerDuty
    from tests.conftest import pagerduty_settings

    policy = _policy(tmp_path, "remediations:\n  rollback_deployment: {approvers: [oncall]}\n")
    slack.add_user("ola", email="oncall@waqiti.example")  # PagerDuty's level-1 on-call
    slack.add_user("erin", email="eng-manager@waqiti.example")  # level 2: not the on-call
    async with (
        FakePagerDuty() as pagerduty,
        running_bot(
            dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10,
            **pagerduty_settings(pagerduty),
        ) as bot,
    ):  # fmt: skip
        pending = await _request_rollback(bot)
        await bot.post_signed(_click(bot, "erin", ApprovalAction.APPROVE, pending))
        assert "whoever is on call in PagerDuty" in bot.replies_to("erin")[-1]
        await bot.post_signed(_click(bot, "ola", ApprovalAction.APPROVE, pending))
        assert (await bot.fetch("SELECT status FROM pending_actions"))[0]["status"] == "succeeded"


async def test_members_of_a_slack_user_group_may_approve(
    dsn: str, slack: FakeSlack, kube: tuple[FakeKubernetes, Path], tmp_path: Path
) -> None:
    policy = _policy(tmp_path, "remediations:\n  rollback_deployment: {approvers: [group:S0SRE]}\n")
    slack.add_usergroup("S0SRE", [slack.add_user("kim")])
    async with running_bot(
        dsn, slack, kubeconfig=kube[1], playbooks_dir=policy, verify_timeout_seconds=10
    ) as bot:
        pending = await _request_rollback(bot)
        await bot.post_signed(_click(bot, "dana", ApprovalAction.APPROVE, pending))
        assert "Only <!subteam^S0SRE> may decide" in bot.replies_to("dana")[-1]
        await bot.post_signed(_click(bot, "kim", ApprovalAction.APPROVE, pending))
        assert (await bot.fetch("SELECT status FROM pending_actions"))[0]["status"] == "succeeded"


async def test_a_run_cut_short_by_a_dead_process_is_failed_and_never_rerun(
    rbot: Bot, kube: tuple[FakeKubernetes, Path]
) -> None:
    """Approved but never started, or running far too long: the process that owned it died.
    The sweeper marks both failed, says so in the thread, and runs nothing."""
    fake, _ = kube
    first = int(await _request_rollback(rbot))
    copy = """INSERT INTO pending_actions (incident_id, action, label, params, preview,
                  requested_by, requested_at, expires_at, required, approvers, entry_id)
              SELECT incident_id, action, label, params, preview, requested_by, requested_at,
                  expires_at, required, approvers, entry_id
              FROM pending_actions WHERE id = $1 RETURNING id"""
    async with rbot.services.pool.acquire() as conn:
        cut_short = await conn.fetchval(copy, first)
        busy = await conn.fetchval(copy, first)
        # Left by a process that died right after the approving click...
        await conn.execute(
            "UPDATE pending_actions SET status = 'approved', approvals = '[\"U1\"]',"
            " decided_at = now() - interval '3 minutes' WHERE id = $1",
            first,
        )
        # ... by one that died 20 minutes into a run; and a run going on now, left alone.
        await conn.execute(
            "UPDATE pending_actions SET status = 'running',"
            " started_at = now() - interval '20 minutes' WHERE id = $1",
            cut_short,
        )
        await conn.execute(
            "UPDATE pending_actions SET status = 'running', started_at = now() WHERE id = $1",
            busy,
        )
    assert await rbot.services.approvals.fail_interrupted() == 2
    assert await rbot.services.approvals.fail_interrupted() == 0  # each once
    rows = {r["id"]: r for r in await rbot.fetch("SELECT id, status, result FROM pending_actions")}
    assert rows[first]["status"] == "failed"
    assert "nothing was done" in rows[first]["result"]["summary"]
    assert rows[cut_short]["status"] == "failed"
    assert "effect unknown" in rows[cut_short]["result"]["summary"]
    assert rows[busy]["status"] == "running"
    await rbot.settle()
    thread = "\n".join(rbot.thread_texts(1))
    assert "not run: the bot stopped before starting it" in thread
    assert "interrupted: the bot restarted; effect unknown, check before retrying" in thread
    image = fake.deployment(NS, DEPLOY)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "payments:1.4.2"  # nothing was rolled back
    assert (await rbot.services.incidents.verify(1)).ok


async def test_a_run_that_outlives_the_sweepers_limit_still_reports_its_real_outcome(
    rbot: Bot, kube: tuple[FakeKubernetes, Path]
) -> None:
    """The sweeper cannot tell a very slow run from a dead one: when the run does finish, its
    real outcome replaces the sweeper's 'interrupted', and the thread says what happened."""
    from datetime import timedelta

    fake, _ = kube
    pending = int(await _request_rollback(rbot))
    async with rbot.services.pool.acquire() as conn:
        await conn.execute(
            "UPDATE pending_actions SET status = 'approved', approvals = '[\"U1\"]',"
            " decided_at = now() WHERE id = $1",
            pending,
        )
    approvals = rbot.services.approvals
    approvals.lease = timedelta(0)  # every heartbeat is too old from its first moment
    run = asyncio.create_task(approvals.run(pending))
    for _ in range(2000):  # until the run has started (approved -> running)
        [row] = await rbot.fetch("SELECT status FROM pending_actions WHERE id = $1", pending)
        if row["status"] != "approved":
            break
        await asyncio.sleep(0.005)
    assert await approvals.fail_interrupted() == 1  # taken for a run a dead process left
    final = await run
    assert final.status == "succeeded"
    [row] = await rbot.fetch("SELECT status, result FROM pending_actions WHERE id = $1", pending)
    assert row["status"] == "succeeded" and row["result"]["ok"] is True
    results = await rbot.fetch(
        "SELECT text FROM timeline WHERE kind = 'remediation_result' ORDER BY seq"
    )
    assert "interrupted" in results[0]["text"]
    assert "finished after it had been reported interrupted" in results[1]["text"]
    image = fake.deployment(NS, DEPLOY)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "payments:1.4.1"


async def test_a_request_for_one_approval_says_approval_without_a_plural(rbot: Bot) -> None:
    await _request_rollback(rbot)
    rows = await rbot.fetch("SELECT text FROM timeline WHERE kind = 'approval_requested'")
    assert "needing 1 approval from" in rows[0]["text"], rows[0]["text"]
