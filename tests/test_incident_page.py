"""The incident page over real HTTP (issue 20): tokens, headers, escaping, the exports.

The bot runs as in every scenario test (tests/conftest.py `bot`): real PostgreSQL, the Slack
stand-in, the app on 127.0.0.1. Links are minted with the bot's own key (`bot.pages.links`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from typing import Any

import structlog

from bot.domain.drafts import named
from bot.domain.postmortem import render as postmortem_render
from bot.pages import links
from bot.pages.routes import SECURITY_HEADERS
from tests.conftest import Bot

TITLE = "Payments failing"


def token(bot: Bot, number: int) -> str:
    return links.linker(bot.services.settings).token(number, now=bot.clock())


def url(bot: Bot, number: int, tok: str, suffix: str = "") -> str:
    return f"{bot.base}/incidents/INC-{number}{suffix}?t={tok}"


async def get(bot: Bot, address: str) -> tuple[int, dict[str, str], str]:
    async with bot.http.get(address, allow_redirects=False) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def scripted(bot: Bot) -> None:
    dana = bot.user("dana")
    await bot.command(f"declare {TITLE} sev2")
    await bot.command(f"assign <@{dana}|dana> scribe")
    await bot.command("status Investigating: payment-service 5xx since 14:02")
    await bot.command("note root cause: bad 1.4.2 deploy")
    bot.clock.advance(minutes=40)  # a late gap (SEV2 expects an update every 30m)
    await bot.command("status Mitigated: rolled back to 1.4.1")
    await bot.command("resolve bad deploy rolled back")


def assert_security_headers(headers: dict[str, str]) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, name
    assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'none' covers it
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]


async def test_page_shows_every_timeline_entry_with_security_headers(bot: Bot) -> None:
    await scripted(bot)
    status, headers, html = await get(bot, url(bot, 1, token(bot, 1)))
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert_security_headers(headers)
    entries = await bot.fetch("SELECT seq FROM timeline WHERE incident_id = 1")
    shown = re.findall(r'<li class="entry[^"]*" id="e(\d+)"', html)
    assert sorted(int(s) for s in shown) == sorted(r["seq"] for r in entries)
    assert "<script" not in html
    assert TITLE in html and "SEV2" in html and "resolved" in html
    assert "The hash chain verifies" in html
    assert "Post-mortem draft" in html and "## Timeline" in html
    assert "3 gaps, 2 status updates." in html and "(s)" not in html  # counted in words


async def test_bad_expired_and_other_incident_tokens_get_403_with_nothing_of_the_incident(
    bot: Bot,
) -> None:
    await bot.command(f"declare {TITLE} sev2")
    await bot.command("declare Second incident sev3")
    good = token(bot, 1)
    expires, mac = good.split(".")
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    bad = {
        "altered": url(bot, 1, f"{expires}.{flipped}"),
        "longer life": url(bot, 1, f"{int(expires) + 86400}.{mac}"),
        "other incident": url(bot, 2, good),
        "missing": f"{bot.base}/incidents/INC-1",
        "garbage": url(bot, 1, "%3Cscript%3E"),
        "svg of another": url(bot, 2, good, ".svg"),
        "json altered": url(bot, 1, f"{expires}.{flipped}", ".json"),
        "md altered": url(bot, 1, f"{expires}.{flipped}", ".md"),
        "huge number": url(bot, 3 * 10**9, good),
    }
    for what, address in bad.items():
        status, headers, body = await get(bot, address)
        assert status == 403, what
        assert_security_headers(headers)
        assert "/ic timeline" in body, what
        assert TITLE not in body and "Second incident" not in body and "INC-" not in body, what
    bot.clock.advance(seconds=bot.services.settings.web_link_ttl + 1)
    status, _, body = await get(bot, url(bot, 1, good))
    assert status == 403 and TITLE not in body
    status, _, _ = await get(bot, url(bot, 1, token(bot, 1)))  # a fresh link works again
    assert status == 200


async def test_a_script_title_renders_as_text(bot: Bot) -> None:
    await bot.command("declare <script>alert(1)</script> sev3")
    status, _, html = await get(bot, url(bot, 1, token(bot, 1)))
    assert status == 200
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    _, _, picture = await get(bot, url(bot, 1, token(bot, 1), ".svg"))
    assert "<script" not in picture and "&lt;script&gt;" in picture


async def test_mentions_and_links_show_readably_and_links_show_their_real_target(
    bot: Bot,
) -> None:
    dana = bot.user("dana")
    await bot.command("declare Checkout slow sev3")
    await bot.command(
        f"note ask <@{dana}> and <!here>; see <https://evil.example/x|https://grafana.example>"
    )
    _, _, html = await get(bot, url(bot, 1, token(bot, 1)))
    assert f"@{dana}" in html and "@here" in html
    assert "<!here>" not in html and "&lt;!here&gt;" not in html
    assert "grafana.example" not in html  # the label that hid the target is gone
    assert 'href="https://evil.example/x"' in html


async def test_svg_has_one_tick_per_status_update_and_gaps_judged_against_the_cadence(
    bot: Bot,
) -> None:
    await scripted(bot)
    status, headers, picture = await get(bot, url(bot, 1, token(bot, 1), ".svg"))
    assert status == 200
    assert headers["Content-Type"].startswith("image/svg+xml")
    assert_security_headers(headers)
    updates = await bot.fetch("SELECT 1 FROM timeline WHERE kind = 'status_update'")
    assert picture.count('class="tick"') == len(updates) == 2
    assert picture.count('class="gap late"') == 1  # the 40 minutes without an update
    assert picture.count('class="gap on-time"') == 2
    assert picture.startswith("<svg") and "<script" not in picture


async def test_markdown_export_is_the_postmortem_draft(bot: Bot) -> None:
    await scripted(bot)
    status, headers, markdown = await get(bot, url(bot, 1, token(bot, 1), ".md"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/markdown")
    incident, entries = await bot.services.incidents.timeline(1)
    assert markdown == await named(postmortem_render(incident, entries), bot.services.directory)


async def test_markdown_export_names_people_where_the_timeline_has_their_ids(bot: Bot) -> None:
    """A downloaded `.md` is read outside Slack, which would show `<@U…>` as typed."""
    await scripted(bot)
    _, _, markdown = await get(bot, url(bot, 1, token(bot, 1), ".md"))
    assert "<@U" not in markdown, markdown
    assert "Declared by @alice as SEV2" in markdown
    assert (await bot.services.incidents.verify(1)).ok  # the timeline keeps the ids


async def test_json_export_has_every_entry_with_its_hashes_and_the_chain_head(bot: Bot) -> None:
    await scripted(bot)
    status, headers, body = await get(bot, url(bot, 1, token(bot, 1), ".json"))
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    document: dict[str, Any] = json.loads(body)
    rows = await bot.fetch("SELECT seq, hash, content_hash, prev_hash FROM timeline ORDER BY seq")
    [head] = await bot.fetch("SELECT timeline_count, timeline_head FROM incidents WHERE id = 1")
    assert document["incident"]["ref"] == "INC-1"
    assert [
        (e["seq"], e["hash"], e["content_hash"], e["prev_hash"]) for e in document["entries"]
    ] == [(r["seq"], r["hash"], r["content_hash"], r["prev_hash"]) for r in rows]
    assert document["chain"] == {
        "count": head["timeline_count"],
        "head": head["timeline_head"],
        "verified": True,
        "checked": len(rows),
        "problems": [],
    }


async def test_an_altered_timeline_is_shown_as_not_verifying(bot: Bot) -> None:
    await scripted(bot)
    await bot.fetch("UPDATE timeline SET text = 'nothing happened' WHERE seq = 3")
    _, _, html = await get(bot, url(bot, 1, token(bot, 1)))
    assert "does NOT verify" in html and "entry 3" in html
    assert "(1 problem)" in html and "(s)" not in html
    _, _, body = await get(bot, url(bot, 1, token(bot, 1), ".json"))
    assert json.loads(body)["chain"]["verified"] is False


async def test_tokens_never_reach_the_log(bot: Bot) -> None:
    await bot.command(f"declare {TITLE} sev2")
    good = token(bot, 1)
    with structlog.testing.capture_logs() as logged:
        await get(bot, url(bot, 1, good))
        await get(bot, url(bot, 1, good + "x"))
        await get(bot, url(bot, 1, good, ".json"))
    requests = [e for e in logged if e["event"] == "page.request"]
    assert [(e["path"], e["status"]) for e in requests] == [
        ("/incidents/INC-1", 200),
        ("/incidents/INC-1", 403),
        ("/incidents/INC-1.json", 200),
    ]
    mac = good.split(".")[1]
    assert mac not in repr(logged)


async def test_unknown_pages_get_404_with_the_security_headers(bot: Bot) -> None:
    for path in ("/incidents/INC-x", "/incidents/INC-1.html", "/incidents/"):
        status, headers, _ = await get(bot, f"{bot.base}{path}?t=x")
        assert status == 404, path
        assert headers["X-Frame-Options"] == "DENY", path
    status, _, _ = await get(bot, url(bot, 9, token(bot, 9)))  # a valid link, no such incident
    assert status == 404


async def test_the_stylesheet_is_served_from_the_package(bot: Bot) -> None:
    status, headers, css = await get(bot, f"{bot.base}/incidents/static/page.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert "li.entry" in css


def posted_link(text: str, suffix: str = "") -> str:
    """The page link in a message the bot posted (as minted: PUBLIC_URL's default base)."""
    found = re.findall(
        r"http://localhost:3000(/incidents/INC-\d+" + re.escape(suffix) + r"\?t=[^\s>|]+)", text
    )
    assert found, f"no incident-page link in {text!r}"
    return found[-1]


async def test_ic_timeline_and_resolve_replies_carry_a_link_that_opens_the_page(bot: Bot) -> None:
    await bot.command(f"declare {TITLE} sev2")
    await bot.command("timeline")
    path = posted_link(bot.last_reply())
    assert path.startswith("/incidents/INC-1?t=")
    status, _, html = await get(bot, bot.base + path)
    assert status == 200 and TITLE in html
    await bot.command("resolve fixed")
    path = posted_link(bot.last_reply())
    status, _, html = await get(bot, bot.base + path)
    assert status == 200 and "resolved after" in html


async def test_the_resolved_post_in_the_thread_links_the_incident_page(bot: Bot) -> None:
    await bot.command(f"declare {TITLE} sev2")
    await bot.command("resolve fixed")
    [post] = [t for t in bot.thread_texts() if "resolved" in t.lower() and "fixed" in t]
    status, _, html = await get(bot, bot.base + posted_link(post))
    assert status == 200 and TITLE in html and "resolved after" in html
    # only the resolution carries it: the other replies stay as they were
    assert sum("/incidents/INC-1?t=" in t for t in bot.thread_texts()) == 1


async def test_the_postmortem_post_links_the_incident_picture(bot: Bot) -> None:
    await scripted(bot)
    await bot.command("postmortem")
    [post] = [t for t in bot.thread_texts() if "Post-mortem draft of *INC-1*" in t]
    status, headers, picture = await get(bot, bot.base + posted_link(post, ".svg"))
    assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
    assert picture.count('class="tick"') == 2


def icbot_web(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "web", *args],
        env={**os.environ, "LOG_FORMAT": "console", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_icbot_web_refuses_a_bad_incident_reference() -> None:
    result = icbot_web("--link", "INC-x", DATABASE_URL="postgresql://unused/none")
    assert result.returncode == 2
    assert "'INC-x' is not an incident reference" in result.stderr
    assert "Traceback" not in result.stderr


async def test_icbot_web_on_a_database_without_tables_says_what_to_do(empty_dsn: str) -> None:
    result = await asyncio.to_thread(icbot_web, "--port", "1", DATABASE_URL=empty_dsn)
    assert result.returncode == 2
    assert "run `icbot shell` or `icbot migrate` first" in result.stderr
    assert "Traceback" not in result.stderr


async def test_markdown_export_keeps_the_ids_when_slack_cannot_say_who(bot: Bot) -> None:
    await scripted(bot)
    bot.slack.fail("users.info", status=500, times=20)
    status, _, markdown = await get(bot, url(bot, 1, token(bot, 1), ".md"))
    assert status == 200
    incident, entries = await bot.services.incidents.timeline(1)
    assert markdown == postmortem_render(incident, entries)  # as stored: `<@U…>`
