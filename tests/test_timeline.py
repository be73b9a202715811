"""The scribe's timeline: one writer, hash-chained, and `icbot audit verify` catches tampering."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

from bot.core.models import utcnow
from bot.domain import timeline
from tests.conftest import Bot


async def _three_entries(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    await bot.command("status Investigating the gateway")
    await bot.command("note card network latency up")


async def test_intact_chain_verifies(bot: Bot) -> None:
    await _three_entries(bot)
    result = await bot.services.incidents.verify(1)
    assert result.ok and result.checked == 3 and result.problems == []


async def test_each_entry_chains_to_the_previous_hash(bot: Bot) -> None:
    await _three_entries(bot)
    rows = await bot.fetch("SELECT seq, prev_hash, hash FROM timeline ORDER BY seq")
    assert rows[0]["prev_hash"] == ""
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["hash"]
    assert len({r["hash"] for r in rows}) == 3


async def test_edited_entry_is_detected(bot: Bot) -> None:
    await _three_entries(bot)
    async with bot.services.pool.acquire() as conn:
        await conn.execute("UPDATE timeline SET text = 'nothing happened' WHERE seq = 2")
    result = await bot.services.incidents.verify(1)
    assert not result.ok
    assert any("entry 2" in p and "edited" in p for p in result.problems)


async def test_deleted_middle_entry_is_detected(bot: Bot) -> None:
    await _three_entries(bot)
    async with bot.services.pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM outbox WHERE timeline_id IN (SELECT id FROM timeline WHERE seq = 2)"
        )
        await conn.execute("DELETE FROM timeline WHERE seq = 2")
    result = await bot.services.incidents.verify(1)
    assert not result.ok
    assert any("entry 2 is missing" in p for p in result.problems)


async def test_deleted_last_entry_is_detected(bot: Bot) -> None:
    await _three_entries(bot)
    async with bot.services.pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM outbox WHERE timeline_id IN (SELECT id FROM timeline WHERE seq = 3)"
        )
        await conn.execute("DELETE FROM timeline WHERE seq = 3")
    result = await bot.services.incidents.verify(1)
    assert not result.ok
    assert any("removed" in p for p in result.problems)


async def test_rewritten_chain_with_recomputed_hashes_is_still_caught_by_the_head(bot: Bot) -> None:
    await _three_entries(bot)
    async with bot.services.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM timeline WHERE seq = 3")
        assert row is not None
        forged = timeline.content_hash(
            incident_id=1, seq=3, kind=row["kind"], actor=row["actor"], text="forged",
            data=row["data"], occurred_at=row["occurred_at"],
        )  # fmt: skip
        await conn.execute(
            "UPDATE timeline SET text = 'forged', content_hash = $1, hash = $2 WHERE seq = 3",
            forged,
            timeline.chain_hash(row["prev_hash"], forged),
        )
    result = await bot.services.incidents.verify(1)
    assert not result.ok
    assert any("last entry" in p for p in result.problems)


async def test_record_outside_a_transaction_is_refused(bot: Bot) -> None:
    await bot.command("declare Payments failing sev2")
    async with bot.services.pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await timeline.record(
                conn,
                incident_id=1,
                kind=timeline.Kind.NOTE,
                text="x",
                actor="U1",
                occurred_at=utcnow(),
            )


async def test_a_failed_change_leaves_no_entry(bot: Bot) -> None:
    """The change and its entry commit together: a rollback takes both."""
    await bot.command("declare Payments failing sev2")
    async with bot.services.pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="boom"):
            async with conn.transaction():
                await conn.execute("UPDATE incidents SET severity = 'sev1' WHERE id = 1")
                await timeline.record(
                    conn, incident_id=1, kind=timeline.Kind.SEVERITY, text="x", actor="U1",
                    occurred_at=utcnow(),
                )  # fmt: skip
                raise RuntimeError("boom")
    rows = await bot.fetch("SELECT severity, timeline_count FROM incidents")
    assert rows[0]["severity"] == "sev2" and rows[0]["timeline_count"] == 1
    assert len(await bot.fetch("SELECT * FROM timeline")) == 1
    assert (await bot.services.incidents.verify(1)).ok


def _icbot(args: list[str], dsn: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": dsn, "LOG_FORMAT": "console"}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_audit_verify_cli_exits_nonzero_when_an_entry_was_altered(bot: Bot, dsn: str) -> None:
    await _three_entries(bot)
    ok = _icbot(["audit", "verify", "INC-1"], dsn)
    assert ok.returncode == 0, ok.stderr
    assert "intact (3 entries verified)" in ok.stdout
    async with bot.services.pool.acquire() as conn:
        await conn.execute("UPDATE timeline SET actor = 'U0MALLORY' WHERE seq = 1")
    bad = _icbot(["audit", "verify", "INC-1"], dsn)
    assert bad.returncode == 1
    assert "ALTERED" in bad.stdout and "entry 1" in bad.stdout


async def test_audit_verify_cli_reports_an_unknown_incident(bot: Bot, dsn: str) -> None:
    result = _icbot(["audit", "verify", "INC-77"], dsn)
    assert result.returncode == 2
    assert "INC-77 does not exist" in result.stderr
