"""Issue 19, "evidence for every production change": `icbot audit export INC-n` writes a bundle
an auditor checks offline (`icbot audit verify --bundle DIR`), with a change record per
remediation; editing one byte of any of its files fails that check. `/ic export` posts it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core.ids import ApprovalAction
from bot.core.settings import Settings
from bot.pages.bundle import SUMS, read_bundle, verify_bundle
from bot.playbooks.remediations import REMEDIATIONS
from bot.runtime.shell import run_shell
from tests.conftest import Bot
from tests.test_approvals import _click, _request_rollback, kube, rbot
from tests.test_scripted_incident import SCRIPT, ScriptedStdin, SteppedClock

__all__ = ["kube", "rbot"]  # the fixtures of tests/test_approvals.py, used here


async def _icbot(
    *args: str, dsn: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LOG_FORMAT": "console", **(env or {})}
    if dsn is not None:
        env["DATABASE_URL"] = dsn
    else:
        env.pop("DATABASE_URL", None)
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
async def scripted_incident(dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The scripted sandbox incident of tests/test_scripted_incident.py: declared, diagnosed,
    a rollback requested by sam and approved by dana, resolved, then `/ic export` (shown in the
    shell as the ZIP's name and size, not its bytes). Returns its database."""
    monkeypatch.setenv("USER", "sam")
    t0 = (datetime.now(UTC) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    clock = SteppedClock(t0)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=dsn,
        incident_channel="waqiti-incidents",
        data_dir=Path("/tmp/icbot-test-unused"),
    )
    out = io.StringIO()
    code = await run_shell(
        settings,
        stdin=ScriptedStdin([*SCRIPT, (29, "/ic export")], clock),
        out=out,
        scenario="bad-deploy",
        clock=clock,
    )
    assert code == 0
    printed = out.getvalue()
    assert "Done and verified (by @dana)" in printed
    assert re.search(r"┌ 📦 INC-1-evidence\.zip · INC-1 evidence bundle \(\d+ bytes\)", printed)
    return dsn


async def test_exported_bundle_of_an_approved_rollback_verifies_offline(
    scripted_incident: str, tmp_path: Path
) -> None:
    folder = tmp_path / "evidence"
    exported = await _icbot("audit", "export", "INC-1", "--out", str(folder), dsn=scripted_incident)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    names = sorted(p.name for p in folder.iterdir())
    doc = json.loads((folder / "INC-1.json").read_text())
    [change] = doc["changes"]
    assert names == sorted(["INC-1.json", "INC-1.md", f"change-{change['request']}.md", SUMS])
    # The change record has what PCI DSS 6.5.1 asks of a production change.
    assert change["action"] == "rollback_deployment" and change["status"] == "succeeded"
    assert [d["text"].split("\n")[0] for d in change["reason"]["diagnoses"]]  # the diagnosis
    assert any("to revision 2" in line for line in change["description"])
    requested_by = change["requested"]["by"]
    [approval] = change["approved"]
    assert approval["by"] != requested_by and approval["at"] > change["requested"]["at"]
    assert change["verification"]["ok"] is True
    assert "rolled back waqiti/payment-service to revision 2" in change["verification"]["summary"]
    assert change["backout"]["previous_state"]["revision"] == 3
    assert "previous revision, 3" in change["backout"]["how"]
    unknown = await _icbot(
        "audit", "export", "INC-9", "--out", str(tmp_path / "nine"), dsn=scripted_incident
    )
    assert unknown.returncode == 2 and "INC-9 does not exist" in unknown.stderr
    assert not (tmp_path / "nine").exists()
    readable = (folder / f"change-{change['request']}.md").read_text()
    for heading in ("Reason", "Description and impact", "Requested and approved",
                    "Verification", "Back-out"):  # fmt: skip
        assert f"## {heading}" in readable

    # Offline: no DATABASE_URL, and no embedded database is started either.
    data = tmp_path / "xdg"
    verified = await _icbot(
        "audit", "verify", "--bundle", str(folder), env={"XDG_DATA_HOME": str(data)}
    )
    assert not data.exists()
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "bundle intact" in verified.stdout and doc["chain"]["head"] in verified.stdout
    assert " 1 change record;" in verified.stdout and "(s)" not in verified.stdout
    # The auditor needs no bot for the file hashes: sha256sum checks them as they are.
    sha256sum = shutil.which("sha256sum")
    assert sha256sum is not None
    summed = await asyncio.to_thread(
        subprocess.run, [sha256sum, "-c", SUMS], cwd=folder, capture_output=True, text=True
    )
    assert summed.returncode == 0, summed.stdout + summed.stderr


async def test_editing_one_byte_of_any_bundle_file_fails_verification(
    scripted_incident: str, tmp_path: Path
) -> None:
    folder = tmp_path / "INC-1"
    exported = await _icbot("audit", "export", "INC-1", "--out", str(folder), dsn=scripted_incident)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    files = read_bundle(folder)
    assert verify_bundle(files).ok
    assert len(files) == 4
    for name, content in files.items():
        for at in (0, len(content) // 3, len(content) // 2, len(content) - 1):
            edited = bytearray(content)
            edited[at] ^= 0x01
            check = verify_bundle({**files, name: bytes(edited)})
            assert not check.ok, f"editing byte {at} of {name} went unnoticed"
            assert any(name in p for p in check.problems), (name, check.problems)

    # Through the command: non-zero, naming the file that fails.
    change = next(n for n in files if n.startswith("change-"))
    path = folder / change
    path.write_bytes(path.read_bytes().replace(b"Approved by U", b"Approved by W", 1))
    verified = await _icbot("audit", "verify", "--bundle", str(folder))
    assert verified.returncode == 1
    assert "bundle ALTERED" in verified.stdout and change in verified.stdout
    assert "(s)" not in verified.stdout  # `(1 problem)`, `(2 problems)`


async def test_ic_export_of_a_resolved_incident_posts_one_bundle_file_that_verifies(
    rbot: Bot, tmp_path: Path
) -> None:
    pending = await _request_rollback(rbot)
    await rbot.post_signed(_click(rbot, "dana", ApprovalAction.APPROVE, pending))
    await rbot.command("export", user="erin")
    assert "not resolved yet" in rbot.last_reply("erin")
    assert rbot.posted_files(1) == []

    await rbot.command("resolve Rolled back", user="alice")
    request = rbot.command_request("export INC-1", user="erin")
    await rbot.post_signed(request)
    # A retry of the same request is acknowledged and posts nothing (bot.domain.once).
    await rbot.post(request, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "timeout"})
    await rbot.settle()
    [posted] = rbot.posted_files(1)
    assert posted.name == "INC-1-evidence.zip"
    assert "Posted the evidence bundle of *INC-1*" in rbot.last_reply("erin")
    assert len(rbot.replies_to("erin")) == 2
    archive = tmp_path / posted.name
    archive.write_bytes(posted.content or b"")
    files = read_bundle(archive)
    check = verify_bundle(files)
    assert check.ok, check.problems
    assert check.changes == 1
    [carrier] = [m for m in rbot.thread(1) if m.files]
    assert check.head in carrier.text  # the chain head, held by Slack apart from the file
    doc = json.loads(files["INC-1.json"])
    assert doc["incident"]["status"] == "resolved"
    assert doc["changes"][0]["approved"][0]["by"] == rbot.slack.user_id("dana")


async def test_ic_export_with_arguments_past_the_incident_gets_its_usage(rbot: Bot) -> None:
    await rbot.command("declare Payments failing sev1", user="alice")
    status, body = await rbot.command("export INC-1 now", user="alice")
    assert status == 200 and "/ic export [INC-n]" in body
    assert rbot.posted_files(1) == []


async def test_audit_commands_refuse_bad_input_with_a_clear_message(tmp_path: Path) -> None:
    missing = await _icbot("audit", "verify", "--bundle", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "There is no bundle at" in missing.stderr
    not_zip = tmp_path / "INC-1-evidence.zip"
    not_zip.write_text("not a zip")
    bad = await _icbot("audit", "verify", "--bundle", str(not_zip))
    assert bad.returncode == 2 and "neither a bundle folder nor a bundle ZIP" in bad.stderr
    both = await _icbot("audit", "verify", "INC-1", "--bundle", str(tmp_path))
    assert both.returncode == 2 and "not both" in both.stderr
    neither = await _icbot("audit", "verify")
    assert neither.returncode == 2 and "--bundle DIR" in neither.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    refused = await _icbot("audit", "export", "INC-1", "--out", str(busy))
    assert refused.returncode == 2 and "not an empty folder" in refused.stderr
    assert [p.name for p in busy.iterdir()] == ["notes.txt"]
    for result in (missing, bad, both, neither, refused):
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("action", "params", "state", "says"),
    [
        ("rollback_deployment", {"deployment": "api"}, {"revision": 7, "image": "api:2"},
         "previous revision, 7 (`api:2`): `/rollback api 7 --namespace waqiti`"),
        ("restart_deployment", {"deployment": "api"}, {"revision": 7, "image": "api:2"},
         "stays at revision 7"),
        ("scale_deployment", {"deployment": "api", "replicas": 9}, {"replicas": 3},
         "back to the previous 3 replicas"),
        ("circuit_breaker", {"service": "ledger", "breaker": "db", "to": "FORCED_OPEN"},
         {"state": "CLOSED"}, "back to the previous CLOSED"),
        ("feature_flag", {"flag": "fast-path", "value": True}, {"version": 4, "value": False},
         "back to the previous value false (it was version 4)"),
        ("rotate_secret", {"path": "secret/alerting/x", "key": "token"}, {"version": 2},
         "previous version 2"),
    ],
)  # fmt: skip
def test_every_remediation_names_its_back_out_from_the_previewed_state(
    action: str, params: dict[str, object], state: dict[str, object], says: str
) -> None:
    spec = REMEDIATIONS[action]
    assert spec.backout is not None
    assert says in spec.backout(spec.params.model_validate(params), {"state": state})


def test_every_registered_remediation_has_a_back_out() -> None:
    assert [name for name, spec in REMEDIATIONS.items() if spec.backout is None] == []
