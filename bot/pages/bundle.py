"""An incident's evidence bundle: what an auditor checks without the bot.

`icbot audit export INC-n` writes, into one folder:

- `INC-n.json`: the timeline export (`bot.pages.export.timeline_export`: the incident, every
  entry with its content, content hash, previous hash and chain hash, the chain head) plus
  `changes`, one change record per remediation that was run (PCI DSS 6.5.1: reason,
  description, impact, who requested and who approved and when, verification, back-out).
- `INC-n.md`: the same, readable; `change-<id>.md`: each change record, readable.
- `SHA256SUMS`: the SHA-256 of every other file, as `sha256sum` writes it (an auditor can run
  `sha256sum -c SHA256SUMS` with no bot at all).

The JSON is the source: the Markdown files are rendered from it alone, so `verify_bundle`
(`icbot audit verify --bundle DIR`, no database) re-hashes the chain from the JSON's entries,
renders the Markdown again and compares bytes, checks every change record against the hashed
entries it cites, and re-checks `SHA256SUMS`, byte for byte. Editing any byte of any file of
the bundle fails one of these. (A forger who rewrites every hash consistently is caught only by
comparing the chain head with an independent copy: the message that carries the bundle in
Slack states it, and `icbot audit verify INC-n` re-hashes the live chain.)

People stay as their Slack ids (`<@U…>`) in every file, the Markdown included, unlike the
post-mortem draft and the page's `.md` export: the Markdown must be rendered from the JSON
alone, and a name looked up in Slack at export time is neither in the hashed chain nor
evidence (names change; the id is what Slack's own audit logs record).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from bot.core.errors import Conflict, NotFound
from bot.core.models import Clock, TimelineEntry, incident_ref, who
from bot.core.models import Status as IncidentStatus
from bot.core.numfmt import plural
from bot.domain import once, timeline
from bot.domain.ports import Chat, SharedFile
from bot.domain.timeline import Kind
from bot.pages import export
from bot.playbooks.remediations import REMEDIATIONS
from bot.store import actions as actions_sql
from bot.store import incidents as incidents_sql
from bot.store.actions import PendingAction

FORMAT = "icbot-evidence/1"
SUMS = "SHA256SUMS"
# Requests that changed (or tried to change) production: approved, then run.
RAN = ("running", "succeeded", "failed", "changed")
# The ZIP entries' time: fixed, so one bundle always zips to the same bytes.
_ZIP_TIME = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Bundle:
    """The bundle's files (name -> bytes), in the order they are written."""

    ref: str
    files: dict[str, bytes]
    head: str  # the chain head the export was taken at

    @property
    def digest(self) -> str:
        """SHA-256 of `SHA256SUMS`: one value that names the whole bundle."""
        return hashlib.sha256(self.files[SUMS]).hexdigest()

    def write(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, content in self.files.items():
            path = folder / name
            path.write_bytes(content)
            written.append(path)
        return written

    def zipped(self) -> bytes:
        """The bundle as one ZIP (a folder `INC-n/`), the same bytes every time."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in self.files.items():
                info = zipfile.ZipInfo(f"{self.ref}/{name}", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, content)
        return out.getvalue()


async def load(pool: asyncpg.Pool, incident_id: int) -> tuple[export.Snapshot, list[PendingAction]]:
    """The incident, its timeline and its remediation requests, as one transaction saw them."""
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        snapshot = await export.read(conn, incident_id)
        if snapshot is None:
            raise NotFound(f"{incident_ref(incident_id)} does not exist.")
        requests = await actions_sql.for_incident(conn, incident_id)
    return snapshot, requests


def build(
    snapshot: export.Snapshot, requests: list[PendingAction], *, exported_at: datetime
) -> Bundle:
    """The bundle of one snapshot (see the module docstring)."""
    doc = export.timeline_export(snapshot, exported_at=exported_at)
    doc["bundle"] = FORMAT
    doc["changes"] = [
        change_record(request, snapshot.entries, snapshot.incident.ref)
        for request in requests
        if request.status in RAN
    ]
    return _assemble(doc)


def _assemble(doc: dict[str, Any]) -> Bundle:
    ref = str(doc["incident"]["ref"])
    files: dict[str, bytes] = {
        f"{ref}.json": (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode(),
        **rendered(doc),
    }
    files[SUMS] = sums(files)
    return Bundle(ref=ref, files=files, head=str(doc["chain"]["head"]))


def sums(files: dict[str, bytes]) -> bytes:
    """`sha256sum`'s output for `files` (by name), `SHA256SUMS` itself left out."""
    lines = [
        f"{hashlib.sha256(content).hexdigest()}  {name}\n"
        for name, content in sorted(files.items())
        if name != SUMS
    ]
    return "".join(lines).encode()


def rendered(doc: dict[str, Any]) -> dict[str, bytes]:
    """The Markdown files, from the JSON document alone."""
    ref = str(doc["incident"]["ref"])
    out = {f"{ref}.md": incident_markdown(doc).encode()}
    for change in doc.get("changes") or []:
        out[f"change-{change['request']}.md"] = change_markdown(doc, change).encode()
    return out


# --------------------------------------------------------------------------- change records


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _cite(entry: TimelineEntry) -> dict[str, Any]:
    return {"seq": entry.seq, "at": _iso(entry.occurred_at), "by": entry.actor}


def change_record(request: PendingAction, entries: list[TimelineEntry], ref: str) -> dict[str, Any]:
    """One remediation as a production change (PCI DSS 6.5.1), each fact citing the timeline
    entry (`seq`) that records it."""
    mine = [e for e in entries if e.data.get("pending_id") == request.id]
    asked = next((e for e in mine if e.kind == Kind.APPROVAL_REQUESTED), None)
    approvals = [e for e in mine if e.kind in (Kind.APPROVAL_GIVEN, Kind.APPROVED)]
    result = next((e for e in reversed(mine) if e.kind == Kind.REMEDIATION_RESULT), None)
    before = asked.seq if asked is not None else max((e.seq for e in entries), default=0) + 1
    diagnoses = [e for e in entries if e.kind == Kind.DIAGNOSIS and e.seq < before]
    preview = request.preview
    spec = REMEDIATIONS.get(request.action)
    backout = "unknown: this remediation does not say what undoes it"
    if spec is not None and spec.backout is not None:
        backout = spec.backout(spec.params.model_validate(request.params), preview)
    outcome = request.result or {}
    return {
        "id": f"{ref}-CHG-{request.id}",
        "request": request.id,
        "action": request.action,
        "label": request.label,
        "target": request.target,
        "params": request.params,
        "status": request.status,
        "reason": {
            "incident": ref,
            "diagnoses": [{**_cite(e), "text": e.text} for e in diagnoses],
        },
        "description": list(preview.get("lines") or []),
        "impact": {
            "subject": preview.get("subject"),
            "state_before": preview.get("state_text"),
            "preview": {k: v for k, v in preview.items() if k != "lines"},
        },
        "requested": {"by": request.requested_by, "at": _iso(request.requested_at),
                      "seq": asked.seq if asked else None},
        "policy": {"approvers": request.approvers, "required": request.required},
        "approved": [_cite(e) for e in approvals],
        "verification": {
            "ok": outcome.get("ok"),
            "summary": outcome.get("summary"),
            "verification": outcome.get("verification"),
            **({"seq": result.seq, "at": _iso(result.occurred_at)} if result else {}),
        },
        "backout": {"how": backout, "previous_state": preview.get("state") or {}},
    }  # fmt: skip


# --------------------------------------------------------------------------------- Markdown


def _cell(text: Any) -> str:
    return " ".join(str(text if text is not None else "").split()).replace("|", "\\|")


def incident_markdown(doc: dict[str, Any]) -> str:
    incident, chain = doc["incident"], doc["chain"]
    lines = [
        f"# Evidence bundle: {incident['ref']} {incident['title']}",
        "",
        f"Exported {doc['exported_at']} by icbot ({doc['bundle']}). `{incident['ref']}.json`"
        " is the source; this file and the change records are rendered from it, and"
        f" `{SUMS}` holds the SHA-256 of every file (`sha256sum -c {SUMS}`;"
        " `icbot audit verify --bundle DIR` checks everything, offline).",
        "",
        "## Incident",
        "",
    ]
    for key in ("severity", "status", "declared_by", "declared_at", "acknowledged_at",
                "mitigated_at", "resolved_at", "summary"):  # fmt: skip
        lines.append(f"- **{key.replace('_', ' ')}**: {_cell(incident.get(key)) or '-'}")
    roles = ", ".join(f"{role}: {who}" for role, who in incident["roles"].items()) or "-"
    lines += [f"- **roles**: {_cell(roles)}", "", "## Hash chain", ""]
    lines += [
        f"- **entries**: {chain['count']}",
        f"- **head**: `{chain['head']}`",
        f"- **verified when exported**: {'yes' if chain['verified'] else 'NO'}"
        + "".join(f"\n  - {p}" for p in chain["problems"]),
        "",
        "Each entry's content hash is SHA-256 of its canonical JSON (incident id, seq, kind,"
        " actor, text, data, occurred_at; keys sorted, no spaces); its hash is"
        " SHA-256(previous hash + content hash).",
        "",
        "## Changes",
        "",
    ]
    changes = doc.get("changes") or []
    for change in changes:
        lines.append(
            f"- [{change['id']}](change-{change['request']}.md): {_cell(change['label'])}"
            f" ({change['action']}), {change['status']}"
        )
    if not changes:
        lines.append("No remediation was run.")
    lines += ["", "## Timeline", "", "| seq | time (UTC) | kind | actor | text | hash |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for e in doc["entries"]:
        lines.append(
            f"| {e['seq']} | {e['occurred_at']} | {e['kind']} | {_cell(e['actor'])}"
            f" | {_cell(e['text'])} | `{e['hash'][:16]}` |"
        )
    return "\n".join(lines) + "\n"


def change_markdown(doc: dict[str, Any], change: dict[str, Any]) -> str:
    incident = doc["incident"]
    req, ver = change["requested"], change["verification"]
    seq = f" (timeline entry {req['seq']})" if req.get("seq") else ""
    lines = [
        f"# Change record {change['id']}: {change['label']}",
        "",
        f"Remediation `{change['action']}` on {change['target'] or '-'};"
        f" status **{change['status']}**.",
        "",
        "## Reason",
        "",
        f"Incident {incident['ref']}: {incident['title']} ({incident['severity']}).",
    ]
    for d in change["reason"]["diagnoses"]:
        lines += ["", f"Diagnosis at {d['at']} by {d['by']} (timeline entry {d['seq']}):", ""]
        lines += [f"> {line}" for line in str(d["text"]).splitlines()]
    lines += ["", "## Description and impact (the dry-run preview approved)", ""]
    lines += [f"- {line}" for line in change["description"]]
    impact = change["impact"]
    lines += ["", f"Target: {impact['subject'] or '-'}; state before: {impact['state_before']}."]
    lines += ["", "## Requested and approved", ""]
    lines.append(f"- Requested by {req['by']} at {req['at']}{seq}")
    policy = change["policy"]
    lines.append(
        f"- Policy: {plural(policy['required'], 'approval')} from {', '.join(policy['approvers'])}"
    )
    for a in change["approved"]:
        lines.append(f"- Approved by {a['by']} at {a['at']} (timeline entry {a['seq']})")
    lines += ["", "## Verification", ""]
    ok = {True: "passed", False: "FAILED"}.get(ver.get("ok"), "unknown")
    lines.append(f"- Result: {ok}: {ver.get('summary') or '-'}")
    lines.append(f"- Verification: {ver.get('verification') or '-'}")
    if ver.get("seq"):
        lines.append(f"- Recorded at {ver['at']} (timeline entry {ver['seq']})")
    lines += ["", "## Back-out", "", change["backout"]["how"], ""]
    state = json.dumps(change["backout"]["previous_state"], sort_keys=True, ensure_ascii=False)
    lines.append(f"Previous state: `{state}`")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- verifying


_SUMS_LINE = re.compile(r"^([0-9a-f]{64})  ([A-Za-z0-9._-]+)$")


@dataclass(frozen=True)
class BundleCheck:
    ok: bool
    checked: int  # timeline entries re-hashed
    changes: int
    head: str
    problems: list[str]


def read_bundle(path: Path) -> dict[str, bytes]:
    """A bundle's files from its folder, or from the ZIP the bot posted in Slack."""
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                return {
                    Path(info.filename).name: archive.read(info)
                    for info in archive.infolist()
                    if not info.is_dir()
                }
        except zipfile.BadZipFile as exc:
            raise NotFound(f"{path} is neither a bundle folder nor a bundle ZIP.") from exc
    if not path.is_dir():
        raise NotFound(f"There is no bundle at {path}.")
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def verify_bundle(files: dict[str, bytes]) -> BundleCheck:
    """Re-check a bundle with nothing but its files (see the module docstring)."""
    problems: list[str] = []
    listed = _check_sums(files, problems)
    docs = [n for n in files if n.endswith(".json")]
    if len(docs) != 1:
        problems.append(f"expected one INC-n.json in the bundle, found {len(docs)}")
        return BundleCheck(False, 0, 0, "", problems)
    name = docs[0]
    try:
        doc = json.loads(files[name].decode("utf-8"))
        incident_id = int(doc["incident"]["id"])
        entries = [_entry(incident_id, e) for e in doc["entries"]]
        count, head = int(doc["chain"]["count"]), str(doc["chain"]["head"])
        changes = list(doc.get("changes") or [])
        expected = {name, SUMS, *rendered(doc)}
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problems.append(f"{name} is not a readable bundle document ({type(exc).__name__}: {exc})")
        return BundleCheck(False, 0, 0, "", problems)
    if f"{doc['incident'].get('ref')}.json" != name:
        problems.append(f"{name} holds {doc['incident'].get('ref')}, not what its name says")
    chain = timeline.verify_chain(entries, count=count, head=head)
    problems += [f"{name}: {p}" for p in chain.problems]
    for missing in sorted(expected - set(files)):
        problems.append(f"{missing} is missing")
    for extra in sorted(set(files) - expected):
        problems.append(f"{extra} is not part of the bundle")
    for md, content in rendered(doc).items():
        if md in files and files[md] != content:
            problems.append(f"{md} differs from what {name} says (it was edited)")
    if listed != expected - {SUMS}:
        problems.append(f"{SUMS} does not list exactly the bundle's files")
    by_seq = {e.seq: e for e in entries}
    for change in changes:
        problems += _change_problems(change, by_seq)
    return BundleCheck(not problems, chain.checked, len(changes), head, problems)


def _check_sums(files: dict[str, bytes], problems: list[str]) -> set[str]:
    raw = files.get(SUMS)
    if raw is None:
        problems.append(f"{SUMS} is missing")
        return set()
    listed: set[str] = set()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        problems.append(f"{SUMS} is not plain text (it was edited)")
        return listed
    for number, line in enumerate(text.splitlines(), 1):
        match = _SUMS_LINE.match(line)
        if match is None:
            problems.append(f"{SUMS} line {number} is not `<sha256>  <file>`")
            continue
        digest, name = match.groups()
        listed.add(name)
        content = files.get(name)
        if content is not None and hashlib.sha256(content).hexdigest() != digest:
            problems.append(f"{name}: SHA-256 differs from {SUMS} (it was edited)")
    if raw != sums({n: c for n, c in files.items() if n in listed}):
        problems.append(f"{SUMS} is not as the bot wrote it (it was edited)")
    return listed


def _entry(incident_id: int, e: dict[str, Any]) -> TimelineEntry:
    redacted = e.get("redacted_at")
    return TimelineEntry(
        id=0,
        incident_id=incident_id,
        seq=int(e["seq"]),
        kind=str(e["kind"]),
        actor=str(e["actor"]),
        text=str(e["text"]),
        data=dict(e["data"]),
        occurred_at=datetime.fromisoformat(str(e["occurred_at"])),
        content_hash=str(e["content_hash"]),
        prev_hash=str(e["prev_hash"]),
        hash=str(e["hash"]),
        redacted_at=datetime.fromisoformat(redacted) if redacted else None,
    )


def _change_problems(change: dict[str, Any], by_seq: dict[int, TimelineEntry]) -> list[str]:
    """The facts a change record states must be the ones its cited (hashed) entries record."""
    cid = change.get("id")
    out: list[str] = []

    def cited(seq: Any, kinds: tuple[str, ...], actor: Any) -> None:
        entry = by_seq.get(seq) if isinstance(seq, int) else None
        if entry is None:
            out.append(f"{cid} cites timeline entry {seq}, which is not in the bundle")
        elif entry.data.get("pending_id") != change.get("request") or entry.kind not in kinds:
            out.append(f"{cid}: timeline entry {seq} is not about this change")
        elif actor is not None and entry.actor != actor:
            out.append(f"{cid}: timeline entry {seq} was made by {entry.actor}, not {actor}")

    requested = change.get("requested") or {}
    if requested.get("seq") is not None:
        cited(requested["seq"], (Kind.APPROVAL_REQUESTED,), requested.get("by"))
    for approval in change.get("approved") or []:
        cited(approval.get("seq"), (Kind.APPROVAL_GIVEN, Kind.APPROVED), approval.get("by"))
    verification = change.get("verification") or {}
    if verification.get("seq") is not None:
        cited(verification["seq"], (Kind.REMEDIATION_RESULT,), None)
        seq = verification["seq"]
        entry = by_seq.get(seq) if isinstance(seq, int) else None
        if entry is not None and entry.data.get("ok") != verification.get("ok"):
            out.append(f"{cid}: its verification result is not the one the timeline records")
    return out


# ---------------------------------------------------------------------------- into Slack


@dataclass(frozen=True)
class Posted:
    """A bundle just posted in its incident's thread."""

    bundle: Bundle
    shared: SharedFile
    checked: int  # timeline entries it holds
    changes: int


def zip_name(ref: str) -> str:
    return f"{ref}-evidence.zip"


class Exports:
    """`/ic export`: a resolved incident's bundle, zipped, posted in its thread once per request
    (the request is claimed, `bot.domain.once`, at the top of the transaction that uploads, so a
    retry waits for the first and then does nothing; a failed upload rolls the claim back)."""

    def __init__(self, pool: asyncpg.Pool, chat: Chat, *, clock: Clock) -> None:
        self.pool = pool
        self.chat = chat
        self.clock = clock

    async def post(self, incident_id: int, *, actor: str) -> Posted:
        """Raises NotFound, Conflict (not resolved, or no thread yet), IntegrationError (the
        upload failed), Repeated (a repeat of a request that posted it already)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await once.claim(conn)
            incident = await incidents_sql.get(conn, incident_id)
            if incident is None:
                raise NotFound(f"{incident_ref(incident_id)} does not exist.")
            if incident.status is not IncidentStatus.RESOLVED:
                raise Conflict(
                    f"{incident.ref} is not resolved yet; its evidence bundle is posted once it"
                    f" is (`/ic resolve {incident.ref}`). `icbot audit export {incident.ref}`"
                    " writes one at any time."
                )
            if incident.thread_ts is None:
                raise Conflict(
                    f"{incident.ref}'s card is not in <#{incident.channel_id}> yet, so its"
                    " thread has no place for the bundle; try again in a moment."
                )
            snapshot, requests = await load(self.pool, incident_id)
            made = build(snapshot, requests, exported_at=self.clock())
            shared = await self.chat.share_file(
                channel=incident.channel_id,
                thread_ts=incident.thread_ts,
                filename=zip_name(incident.ref),
                title=f"{incident.ref} evidence bundle",
                content=made.zipped(),
                comment=(
                    f":lock: Evidence bundle of *{incident.ref}*, asked for by {who(actor)}:"
                    f" {len(snapshot.entries)} timeline entries,"
                    f" {plural(len(made_changes(made)), 'change record')}."
                    f" Chain head `{made.head}`; bundle SHA-256 `{made.digest}`."
                    " Check it offline with"
                    f" `icbot audit verify --bundle {zip_name(incident.ref)}`."
                ),
            )
        return Posted(made, shared, len(snapshot.entries), len(made_changes(made)))


def made_changes(made: Bundle) -> list[str]:
    return [name for name in made.files if name.startswith("change-")]
