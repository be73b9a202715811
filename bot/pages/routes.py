"""HTTP handlers of the incident page: `GET /incidents/INC-n[.svg|.md|.json]?t=TOKEN`.

The token is checked before anything is read, and a bad one (altered, expired, another
incident's, missing) gets the same 403 page, which names no incident. Every response under
`/incidents/` carries the security headers (no script may run, no framing, no referrer, no
caching). The token is never logged: each request's log line has the path only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

import asyncpg
from aiohttp import web

from bot.core.errors import IntegrationError
from bot.core.logs import get_logger
from bot.core.models import Clock, incident_ref
from bot.core.settings import Settings
from bot.domain.drafts import named
from bot.domain.policy import SeverityPolicy
from bot.domain.ports import Directory
from bot.domain.postmortem import render as postmortem_markdown
from bot.pages import export, links, render, svg
from bot.pages.links import Check, Linker

log = get_logger(__name__)

PREFIX = "/incidents/"
_TARGET = re.compile(r"^INC-([0-9]{1,10})(\.svg|\.md|\.json)?$")
MAX_INCIDENT = 2**31 - 1  # the id column's range
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none';"
        " form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
HTML = "text/html"


@dataclass(frozen=True)
class PageSite:
    """What the pages need: the database (read only), the severity policy, the link key, and
    who people are (the `.md` export is read outside Slack: mentions as names, not ids)."""

    pool: asyncpg.Pool
    policy: SeverityPolicy
    linker: Linker
    clock: Clock
    directory: Directory | None = None


class IncidentPages:
    def __init__(self, site: PageSite) -> None:
        self.site = site
        self.stylesheet_bytes = (
            resources.files("bot.pages").joinpath("static/page.css").read_bytes()
        )

    async def incident(self, request: web.Request) -> web.Response:
        match = _TARGET.match(request.match_info.get("target", ""))
        if match is None:
            return self._answer(request, 404, render.not_found_html(), reason="no such page")
        number, suffix = int(match.group(1)), match.group(2) or ""
        now = self.site.clock()
        verdict = (
            links.check(self.site.linker.key, number, request.query.get("t"), now=now.timestamp())
            if number <= MAX_INCIDENT
            else Check.MALFORMED
        )
        if verdict is not Check.VALID:
            return self._answer(request, 403, render.forbidden_html(), reason=verdict.value)
        snapshot = await export.load(self.site.pool, number)
        if snapshot is None:
            return self._answer(request, 404, render.not_found_html(), reason="no such incident")
        incident = snapshot.incident
        if suffix == ".svg":
            pic = svg.picture(incident, snapshot.entries, self.site.policy, now=now)
            body, content_type = str(svg.render_svg(pic)), "image/svg+xml"
        elif suffix == ".md":
            body = await self._named(postmortem_markdown(incident, snapshot.entries))
            content_type = "text/markdown"
        elif suffix == ".json":
            document = export.timeline_export(snapshot, exported_at=now)
            body = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
            content_type = "application/json"
        else:
            token = str(request.query["t"])
            expires = int(token.split(".", 1)[0])

            def own(ext: str) -> str:
                return f"{incident_ref(number)}{ext}?t={token}"

            page_links = render.Links(
                page=own(""),
                svg=own(".svg"),
                markdown=own(".md"),
                json=own(".json"),
                expires=datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC"),
            )
            body = render.page_html(snapshot, self.site.policy, now=now, links=page_links)
            content_type = HTML
        response = self._answer(request, 200, body, content_type=content_type, reason="ok")
        if suffix in (".md", ".json"):
            name = (
                f"{incident.ref}{suffix}" if suffix == ".json" else f"postmortem-{incident.ref}.md"
            )
            response.headers["Content-Disposition"] = f'inline; filename="{name}"'
        return response

    async def _named(self, draft: str) -> str:
        """The draft as the file posted in Slack has it; with ids if Slack cannot say who."""
        try:
            return await named(draft, self.site.directory)
        except IntegrationError as exc:
            log.warning("page.names_unavailable", error=str(exc))
            return draft

    async def stylesheet(self, _request: web.Request) -> web.Response:
        response = web.Response(
            body=self.stylesheet_bytes, content_type="text/css", charset="utf-8"
        )
        return response

    def _answer(
        self,
        request: web.Request,
        status: int,
        body: str,
        *,
        reason: str,
        content_type: str = HTML,
    ) -> web.Response:
        # The path only: the query holds the token, which must never reach a log.
        log.info("page.request", path=request.path, status=status, outcome=reason)
        return web.Response(status=status, text=body, content_type=content_type, charset="utf-8")


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith(PREFIX):
        response.headers.update(SECURITY_HEADERS)


def add_routes(app: web.Application, site: PageSite) -> None:
    """Serve the incident pages from `app` (the bot's own, or `icbot web`'s)."""
    pages = IncidentPages(site)
    app.router.add_get(f"{PREFIX}static/page.css", pages.stylesheet)
    app.router.add_get(PREFIX + "{target}", pages.incident)
    app.on_response_prepare.append(_security_headers)


def site(
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    policy: SeverityPolicy,
    clock: Clock,
    directory: Directory | None = None,
) -> PageSite:
    """The pages of this deployment, their links keyed as `bot.pages.links.linker` says."""
    return PageSite(
        pool=pool, policy=policy, linker=links.linker(settings), clock=clock, directory=directory
    )
