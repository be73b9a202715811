"""The incident page in a real browser (issue 20): Debian's Chromium driven by Playwright.

A scripted sandbox incident (declare, diagnose, rollback approved, status updates, resolve:
tests/test_scripted_incident.py's script, through the shell on the sandbox) is served by
`icbot web` (a real subprocess, read-only, on the same database); the page is opened from the
link that command prints, with JavaScript disabled, on a desktop and on a phone viewport.

One browser per test session. Chromium comes from the distribution (`.ci/run` installs it):
Playwright never downloads one. Where it cannot be installed the tests skip, saying so.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.core.settings import Settings
from bot.runtime.shell import run_shell
from sandbox.child import free_port
from tests.conftest import _fresh_database
from tests.test_scripted_incident import SCRIPT, ScriptedStdin, SteppedClock

CHROMIUM = os.environ.get("ICBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parent.parent
DOCS_SCREENSHOT = REPO / "docs" / "incident-page.png"
SECRET = "page-links-secret-for-the-browser-test"


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def served_incident(pg_server: Any, pg_template: str) -> AsyncIterator[dict[str, Any]]:
    """The scripted incident in a fresh database, and `icbot web` serving it (for this module's
    tests): its link, and at the end a check of its log."""
    dsn = await _fresh_database(pg_server, pg_template)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("USER", "sam")
        async for served in _served(dsn):
            yield served


async def _served(dsn: str) -> AsyncIterator[dict[str, Any]]:
    t0 = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    clock = SteppedClock(t0)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=dsn,
        incident_channel="waqiti-incidents",
        data_dir=Path("/tmp/icbot-test-unused"),
        web_link_secret=SECRET,
    )
    script = [
        *SCRIPT[:8],
        (8, "/ic status Identified: see <https://grafana.example/d/1>"),
        *SCRIPT[8:],
    ]
    out = io.StringIO()
    code = await run_shell(
        settings, stdin=ScriptedStdin(script, clock), out=out, scenario="bad-deploy", clock=clock
    )
    assert code == 0, out.getvalue()[-2000:]
    port = free_port("127.0.0.1")
    env = {**os.environ, "DATABASE_URL": dsn, "WEB_LINK_SECRET": SECRET, "LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "web", "--port", str(port), "--link", "INC-1",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        banner = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
        assert b"incident pages (read-only)" in banner, banner
        link = (await asyncio.wait_for(proc.stdout.readline(), timeout=10)).decode().strip()
        assert link.startswith("http://localhost:3000/incidents/INC-1?t="), link
        served: dict[str, Any] = {
            "url": link.replace("http://localhost:3000", f"http://127.0.0.1:{port}"),
            "token": link.split("?t=", 1)[1],
            "dsn": dsn,
        }
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    log = stderr.decode()
    assert '"path": "/incidents/INC-1"' in log  # the access log names the path…
    assert (
        served["token"] not in log and served["token"].split(".")[1] not in log
    )  # …never the token


async def counts(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT kind, count(*) AS n FROM timeline GROUP BY kind")
    finally:
        await conn.close()
    return {r["kind"]: r["n"] for r in rows}


async def test_scripted_incident_page_shows_every_entry_and_one_tick_per_update_without_javascript(
    browser: Any, served_incident: dict[str, Any], tmp_path: Path
) -> None:
    kinds = await counts(served_incident["dsn"])
    assert kinds["status_update"] == 3 and kinds["remediation_result"] == 1
    context = await browser.new_context(
        java_script_enabled=False, viewport={"width": 1100, "height": 900}
    )
    try:
        page = await context.new_page()
        blocked: list[str] = []
        page.on(
            "console",
            lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
        )
        response = await page.goto(served_incident["url"])
        assert response is not None and response.status == 200
        assert response.headers["x-frame-options"] == "DENY"
        assert await page.locator("h1").inner_text() == "Payments failing"
        assert await page.locator("li.entry").count() == sum(kinds.values())
        assert await page.locator("li.entry.key").count() >= 8
        # The picture: one tick per status update, the rollback as a marker.
        picture = page.locator("svg.incident-picture")
        assert await picture.count() == 1
        assert await picture.locator("line.tick").count() == kinds["status_update"]
        assert await picture.locator("circle.remediation.ok").count() == 1
        assert await page.locator("li.approval .outcome").all_inner_texts() == ["done"]
        assert "Payment SAGA" in await page.locator("ol.timeline").inner_text()
        assert await page.locator("p.verified.ok").count() == 1
        # A link in an update shows its real target; chatter opens without script.
        assert await page.locator('a[href="https://grafana.example/d/1"]').count() == 1
        fold = page.locator("li.fold details").first
        await fold.locator("summary").click()
        assert await fold.get_attribute("open") is not None
        # The stylesheet applied (served under the CSP), and nothing was blocked.
        assert await page.locator("main").evaluate("e => getComputedStyle(e).maxWidth") == "960px"
        assert blocked == []
        shot = tmp_path / "incident-page.png"
        await page.screenshot(path=str(shot), full_page=True)
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert 20_000 < len(data) < 3_000_000
        if os.environ.get("ICBOT_UPDATE_SCREENSHOT"):  # the README's picture (kept small)
            await page.set_viewport_size({"width": 820, "height": 760})
            await page.goto(served_incident["url"])  # from the top
            await page.screenshot(path=str(DOCS_SCREENSHOT), type="png")
            assert DOCS_SCREENSHOT.stat().st_size < 150_000
        # The exports open from the page's own links.
        for name, kind in (
            ("picture (SVG)", "image/svg+xml"),
            ("timeline with hashes (JSON)", "application/json"),
        ):
            href = await page.get_by_role("link", name=name).get_attribute("href")
            assert href is not None and href.startswith("INC-1.")
            answer = await page.request.get(served_incident["url"].split("INC-1?")[0] + href)
            assert answer.status == 200 and answer.headers["content-type"].startswith(kind)
    finally:
        await context.close()


async def test_the_page_fits_a_phone_and_a_bad_link_shows_nothing_of_the_incident(
    browser: Any, served_incident: dict[str, Any]
) -> None:
    context = await browser.new_context(
        java_script_enabled=False, viewport={"width": 390, "height": 844}, is_mobile=True
    )
    try:
        page = await context.new_page()
        await page.goto(served_incident["url"])
        width = await page.locator("html").evaluate("e => e.scrollWidth")
        assert width <= 390  # no sideways scrolling (the picture scrolls inside its box)
        url, mac = served_incident["url"], served_incident["token"].split(".")[1]
        altered = url.replace(mac, ("B" if mac[0] == "A" else "A") + mac[1:])
        response = await page.goto(altered)
        assert response is not None and response.status == 403
        text = await page.locator("body").inner_text()
        assert "/ic timeline" in text
        assert "Payments failing" not in text and "INC-1" not in text
    finally:
        await context.close()
