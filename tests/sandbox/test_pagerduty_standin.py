"""The PagerDuty stand-in, driven through the real ``pagerduty`` clients over local HTTPS."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pagerduty
import pytest
from aiohttp import web

from sandbox.pagerduty import (
    DUPLICATE_INCIDENT_KEY_ERROR,
    FakePagerDuty,
    OnCall,
    User,
    sign_webhook,
    verify_webhook_signature,
)
from sandbox.tls import LocalTLS, make_local_tls

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs" / "pagerduty"
REST_SPEC = SPECS / "rest_openapiv3.json"
EXAMPLES = SPECS / "webhooks_v3" / "examples"
# PagerDuty publishes its API schema and webhook docs with no licence, so they are not vendored
# into tests/specs: these checks run where they sit beside the checkout (README, "Tests").
needs_specs = pytest.mark.skipif(
    not REST_SPEC.is_file() or not EXAMPLES.is_dir(),
    reason=(
        f"PagerDuty's schema is not vendored (it carries no licence): put PagerDuty/api-schema's"
        f" reference/REST/openapiv3.json and the webhook examples under {SPECS} to run this"
    ),
)

BOT = "icbot@waqiti.example"
MANAGER = "eng-manager@waqiti.example"
SERVICE = {"id": "PSVC001", "type": "service_reference"}
T = TypeVar("T")
_OPEN_CLIENTS: list[pagerduty.ApiClient] = []


@pytest.fixture(scope="module")
def tls() -> Iterator[LocalTLS]:
    material = make_local_tls()
    yield material
    material.cleanup()


@pytest.fixture
async def pd(tls: LocalTLS) -> AsyncIterator[FakePagerDuty]:
    async with FakePagerDuty(tls=tls) as fake:
        yield fake
        _close_clients()


def _close_clients() -> None:
    """Close the pagerduty clients a test made (keep-alive connections) before the stand-in
    stops."""
    while _OPEN_CLIENTS:
        _OPEN_CLIENTS.pop().close()


def _quick(client: pagerduty.ApiClient) -> None:
    """Bounded, fast retries so a test can never spin on 429s or network errors."""
    _OPEN_CLIENTS.append(client)
    client.sleep_timer = 0.01
    client.max_network_attempts = 0
    client.retry[429] = 2


def _rest(pd: FakePagerDuty, *, api_key: str | None = None, email: str | None = BOT) -> Any:
    client = pagerduty.RestApiV2Client(
        api_key or pd.api_key,
        default_from=email,
        base_url=pd.url,
        verify=ssl.create_default_context(cafile=pd.ca_path),
    )
    _quick(client)
    return client


@pytest.fixture
def client(pd: FakePagerDuty) -> Any:
    return _rest(pd)


@pytest.fixture
def events(pd: FakePagerDuty) -> Any:
    client = pagerduty.EventsApiV2Client(
        pd.routing_key,
        base_url=pd.events_url,
        verify=ssl.create_default_context(cafile=pd.ca_path),
    )
    _quick(client)
    return client


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """The pagerduty clients are synchronous: call them off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def _http_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    with pytest.raises(pagerduty.HttpError) as info:
        await run(fn, *args, **kwargs)
    return info.value.response


def _by_key(pd: FakePagerDuty, key: str) -> dict[str, Any]:
    incident = pd.incident_by_key(key)
    assert incident is not None, key
    return incident


def _new_incident(title: str = "Payments API 5xx", **extra: Any) -> dict[str, Any]:
    return {"type": "incident", "title": title, "service": SERVICE, **extra}


@dataclass
class Receiver:
    """An HTTP endpoint that records webhook deliveries and answers with scripted statuses."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def event_types(self) -> list[str]:
        return [p["event"]["event_type"] for p in self.payloads()]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def handle(request: web.Request) -> web.Response:
        rec.received.append((dict(request.headers), await request.read()))
        return web.Response(status=rec.statuses.pop(0) if rec.statuses else 202)

    app = web.Application()
    app.router.add_post("/pagerduty", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    rec.url = f"http://127.0.0.1:{sock.getsockname()[1]}/pagerduty"
    yield rec
    await runner.cleanup()


# ---------------------------------------------------------------------- transport and auth


async def test_stand_in_serves_https_on_loopback_trusted_only_through_its_ca(
    pd: FakePagerDuty,
) -> None:
    assert pd.url.startswith("https://127.0.0.1:")
    assert pd.events_url == pd.url
    ca = ssl.create_default_context(cafile=pd.ca_path).get_ca_certs()
    assert len(ca) == 1 and "icbot sandbox local CA" in str(ca[0]["subject"])
    untrusting = pagerduty.RestApiV2Client(pd.api_key, base_url=pd.url)
    _quick(untrusting)
    with pytest.raises(pagerduty.Error) as info:
        await run(untrusting.rget, "priorities")
    assert not isinstance(info.value, pagerduty.HttpError)  # TLS failed: no HTTP response
    assert pd.calls == []


async def test_bad_token_is_401_with_pagerduty_error_body(pd: FakePagerDuty) -> None:
    resp = await _http_error(_rest(pd, api_key="not-the-key").rget, "users")
    assert resp.status_code == 401
    assert resp.json() == {"error": {"message": "Authentication failed", "code": 2006}}
    assert pd.calls[-1].headers["Authorization"] == "Token <redacted>"
    assert "not-the-key" not in repr(pd.calls)


async def test_accept_header_is_tolerated_and_unknown_path_is_404_not_found(
    pd: FakePagerDuty, client: Any
) -> None:
    await run(client.rget, "abilities")
    assert pd.calls[-1].headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    resp = await _http_error(client.jget, "/incidents/PNOPE01")
    assert resp.status_code == 404
    assert resp.json() == {"error": {"message": "Not Found", "code": 2100}}


async def test_write_without_from_header_is_400_code_2011_and_unknown_from_is_1008(
    pd: FakePagerDuty,
) -> None:
    anonymous = _rest(pd, email=None)
    resp = await _http_error(anonymous.rpost, "incidents", json=_new_incident())
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == 2011
    stranger = _rest(pd, email="nobody@elsewhere.example")
    resp = await _http_error(stranger.rpost, "incidents", json=_new_incident())
    assert resp.status_code == 400
    assert resp.json()["error"] == {"message": "Requester User Not Found", "code": 1008}
    assert pd.incidents == {}
    # reads need no From header
    assert len(await run(anonymous.list_all, "priorities")) == 5


# ---------------------------------------------------------------------- incidents


async def test_create_incident_is_201_with_service_policy_assignee_and_key(
    pd: FakePagerDuty, client: Any
) -> None:
    body = _new_incident(
        urgency="high",
        incident_key="waqiti-INC-7",
        body={"type": "incident_body", "details": "checkout failing"},
        priority={"id": "PPRI001", "type": "priority_reference"},
        conference_bridge={"conference_url": "https://meet.example/inc-7"},
    )
    incident = await run(client.rpost, "incidents", json=body)
    assert pd.calls[-1].status == 201
    assert incident["id"] in pd.incidents
    assert incident["type"] == "incident"
    assert incident["status"] == "triggered"
    assert incident["incident_number"] == 1
    assert incident["summary"] == "[#1] Payments API 5xx"
    assert incident["incident_key"] == "waqiti-INC-7"
    assert incident["service"]["id"] == "PSVC001" and incident["service"]["summary"] == "payments"
    assert incident["escalation_policy"]["type"] == "escalation_policy_reference"
    assert [a["assignee"]["id"] for a in incident["assignments"]] == ["PUSR001"]
    assert incident["assigned_via"] == "escalation_policy"
    assert incident["priority"]["name"] == "P1"
    assert incident["last_status_change_by"]["id"] == "PUSR004"  # the From user
    assert incident["self"] == f"{pd.url}/incidents/{incident['id']}"
    assert incident["body"] == {"type": "incident_body", "details": "checkout failing"}
    fetched = await run(client.rget, incident)  # by its "self" URL
    assert "body" not in fetched
    assert fetched["conference_bridge"] == {"conference_url": "https://meet.example/inc-7"}
    included = await run(client.rget, incident["self"], params={"include[]": ["body"]})
    assert included["body"]["details"] == "checkout failing"


async def test_retry_with_same_incident_key_while_open_is_400_and_makes_no_second_incident(
    pd: FakePagerDuty, client: Any
) -> None:
    first = await run(client.rpost, "incidents", json=_new_incident(incident_key="k-1"))
    resp = await _http_error(client.rpost, "incidents", json=_new_incident(incident_key="k-1"))
    assert resp.status_code == 400
    assert resp.json()["error"]["errors"] == [DUPLICATE_INCIDENT_KEY_ERROR]
    assert list(pd.incidents) == [first["id"]]
    # the bot recovers the existing incident by its key
    found = await run(client.list_all, "incidents", params={"incident_key": "k-1"})
    assert [i["id"] for i in found] == [first["id"]]
    assert pd.incident_by_key("k-1") == pd.incidents[first["id"]]
    # once resolved, the key is free again
    await run(client.rput, first, json={"type": "incident_reference", "status": "resolved"})
    second = await run(client.rpost, "incidents", json=_new_incident(incident_key="k-1"))
    assert second["id"] != first["id"]
    assert pd.incident_by_key("k-1") == pd.incidents[second["id"]]


async def test_create_incident_validates_type_title_service_and_urgency(
    pd: FakePagerDuty, client: Any
) -> None:
    bad = {
        "type": "incident_reference",
        "title": " ",
        "service": {"id": "PNOPE", "type": "service_reference"},
        "urgency": "urgent",
    }
    resp = await _http_error(client.rpost, "incidents", json=bad)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == 2001 and error["message"] == "Invalid Input Provided"
    assert len(error["errors"]) == 4
    assert pd.incidents == {}


async def test_iter_all_pages_with_limit_offset_more_over_several_pages(
    pd: FakePagerDuty, client: Any
) -> None:
    for n in range(5):
        pd.trigger_alert(f"alert {n}", dedup_key=f"d{n}")
    seen = await run(
        lambda: [i["title"] for i in client.iter_all("incidents", page_size=2, total=True)]
    )
    assert seen == [f"alert {n}" for n in range(5)]
    pages = pd.calls_to("listIncidents")
    assert [c.query["offset"] for c in pages] == [["0"], ["2"], ["4"]]
    replays = [{k: v[-1] for k, v in c.query.items()} for c in pages]
    bodies = [await run(client.jget, "incidents", params=q) for q in replays]
    assert [(b["more"], b["total"], len(b["incidents"])) for b in bodies] == [
        (True, 5, 2),
        (True, 5, 2),
        (False, 5, 1),
    ]
    assert (await run(client.jget, "incidents"))["total"] is None  # unless total=true
    resp = await _http_error(client.jget, "incidents", params={"offset": 9990, "limit": 20})
    assert resp.status_code == 400


async def test_list_incidents_filters_by_status_service_key_and_time(
    pd: FakePagerDuty, client: Any
) -> None:
    a = pd.trigger_alert("db down", dedup_key="a")
    b = pd.trigger_alert("api slow", dedup_key="b", severity="warning")
    pd.update_incident(b["id"], by=MANAGER, status="acknowledged")

    async def ids(**params: Any) -> list[str]:
        return [i["id"] for i in await run(client.list_all, "incidents", params=params)]

    assert await ids(statuses=["triggered"]) == [a["id"]]
    assert await ids(statuses=["triggered", "acknowledged"]) == [a["id"], b["id"]]
    assert await ids(service_ids=["PSVC001"], incident_key="b") == [b["id"]]
    assert await ids(urgencies=["low"]) == [b["id"]]
    assert await ids(since="2000-01-01T00:00:00Z", until="2000-01-02T00:00:00Z") == []
    assert await ids(sort_by="incident_number:desc") == [b["id"], a["id"]]
    resp = await _http_error(client.jget, "incidents", params={"statuses[]": "open"})
    assert resp.status_code == 400


async def test_acknowledge_then_resolve_updates_status_fields_and_second_resolve_is_1001(
    pd: FakePagerDuty, client: Any
) -> None:
    incident = await run(client.rpost, "incidents", json=_new_incident())
    acked = await run(
        client.rput, incident, json={"type": "incident_reference", "status": "acknowledged"}
    )
    assert acked["status"] == "acknowledged"
    assert [a["acknowledger"]["id"] for a in acked["acknowledgements"]] == ["PUSR004"]
    resolved = await run(
        client.rput,
        incident,
        json={"type": "incident_reference", "status": "resolved", "resolution": "rolled back"},
    )
    assert resolved["status"] == "resolved"
    assert resolved["resolved_at"] is not None
    assert resolved["assignments"] == [] and resolved["acknowledgements"] == []
    assert resolved["last_status_change_by"]["id"] == "PUSR004"
    log = pd.log_entries[incident["id"]]
    assert log[-1]["type"] == "resolve_log_entry" and log[-1]["note"] == "rolled back"
    resp = await _http_error(
        client.rput, incident, json={"type": "incident_reference", "status": "resolved"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == 1001


async def test_put_incident_requires_type_and_a_known_status(
    pd: FakePagerDuty, client: Any
) -> None:
    incident = await run(client.rpost, "incidents", json=_new_incident())
    resp = await _http_error(client.jput, incident["self"], json={"incident": {"status": "x"}})
    assert resp.status_code == 400
    resp = await _http_error(
        client.rput, incident, json={"type": "incident_reference", "status": "closed"}
    )
    assert resp.status_code == 400
    assert pd.incidents[incident["id"]]["status"] == "triggered"


async def test_escalation_level_priority_title_and_urgency_are_updated(
    pd: FakePagerDuty, client: Any
) -> None:
    incident = await run(client.rpost, "incidents", json=_new_incident())
    updated = await run(
        client.rput,
        incident,
        json={
            "type": "incident_reference",
            "escalation_level": 2,
            "priority": "P2",
            "title": "Payments API down",
            "urgency": "low",
        },
    )
    assert [a["assignee"]["id"] for a in updated["assignments"]] == ["PUSR002"]
    assert updated["priority"]["id"] == "PPRI002"
    assert updated["summary"] == "[#1] Payments API down"
    assert updated["urgency"] == "low"
    resp = await _http_error(
        client.rput, incident, json={"type": "incident_reference", "escalation_level": 9}
    )
    assert resp.status_code == 400
    reassigned = await run(
        client.rput,
        incident,
        json={
            "type": "incident_reference",
            "assignments": [{"assignee": {"id": "PUSR003", "type": "user_reference"}}],
        },
    )
    assert reassigned["assigned_via"] == "direct_assignment"
    assert [a["assignee"]["id"] for a in reassigned["assignments"]] == ["PUSR003"]


async def test_bulk_put_incidents_resolves_each_named_incident(
    pd: FakePagerDuty, client: Any
) -> None:
    a = pd.trigger_alert("one")
    b = pd.trigger_alert("two")
    changed = await run(
        client.rput,
        "incidents",
        json=[
            {"id": a["id"], "type": "incident_reference", "status": "resolved"},
            {"id": b["id"], "type": "incident_reference", "status": "resolved"},
        ],
    )
    assert [i["status"] for i in changed] == ["resolved", "resolved"]


async def test_notes_are_added_by_the_from_user_listed_and_must_have_content(
    pd: FakePagerDuty, client: Any
) -> None:
    incident = await run(client.rpost, "incidents", json=_new_incident())
    path = f"incidents/{incident['id']}/notes"
    note = await run(client.rpost, path, json={"content": "Rolled back deploy 42"})
    assert pd.calls_to("createIncidentNote")[-1].status == 200  # as the spec documents
    assert note["content"] == "Rolled back deploy 42"
    assert note["user"]["id"] == "PUSR004"
    assert note["channel"] == {"summary": "The PagerDuty website or APIs"}
    assert [n["id"] for n in await run(client.rget, path)] == [note["id"]]
    assert pd.notes[incident["id"]][0]["content"] == "Rolled back deploy 42"
    resp = await _http_error(client.rpost, path, json={"content": "  "})
    assert resp.status_code == 400
    resp = await _http_error(_rest(pd, email=None).rpost, path, json={"content": "x"})
    assert resp.status_code == 400


async def test_responder_request_adds_pending_responders_and_needs_a_known_requester(
    pd: FakePagerDuty, client: Any
) -> None:
    incident = await run(client.rpost, "incidents", json=_new_incident())
    path = f"incidents/{incident['id']}/responder_requests"
    request = await run(
        client.rpost,
        path,
        json={
            "requester_id": "PUSR004",
            "message": "Please join the bridge",
            "responder_request_targets": [
                {"responder_request_target": {"id": "PUSR003", "type": "user_reference"}}
            ],
        },
    )
    target = request["responder_request_targets"][0]["responder_request_target"]
    assert target["id"] == "PUSR003"
    assert target["incidents_responders"][0]["state"] == "pending"
    stored = pd.incidents[incident["id"]]
    assert [r["user"]["id"] for r in stored["incidents_responders"]] == ["PUSR003"]
    resp = await _http_error(
        client.rpost,
        path,
        json={"requester_id": "PNOBODY", "message": "x", "responder_request_targets": []},
    )
    assert resp.json()["error"]["code"] == 1008


async def test_log_entries_record_trigger_assign_acknowledge_and_annotate(
    pd: FakePagerDuty, client: Any
) -> None:
    incident = await run(client.rpost, "incidents", json=_new_incident())
    await run(client.rput, incident, json={"type": "incident_reference", "status": "acknowledged"})
    await run(client.rpost, f"incidents/{incident['id']}/notes", json={"content": "on it"})
    entries = await run(client.list_all, f"incidents/{incident['id']}/log_entries")
    assert [e["type"] for e in entries] == [
        "trigger_log_entry",
        "assign_log_entry",
        "acknowledge_log_entry",
        "annotate_log_entry",
    ]
    assert incident["first_trigger_log_entry"]["id"] == entries[0]["id"]
    assert {e["agent"]["id"] for e in entries} == {"PUSR004"}


# ---------------------------------------------------------------------- directory


async def test_oncalls_filter_by_policy_schedule_and_earliest(
    pd: FakePagerDuty, client: Any
) -> None:
    everyone = await run(client.list_all, "oncalls", params={"escalation_policy_ids": ["PEPL001"]})
    assert [(o["escalation_level"], o["user"]["id"]) for o in everyone] == [
        (1, "PUSR001"),
        (2, "PUSR002"),
        (3, "PUSR003"),
    ]
    first = everyone[0]
    assert first["schedule"]["id"] == "PSCH001"
    assert first["start"] < first["end"]
    assert first["escalation_policy"]["id"] == "PEPL001"
    scheduled = await run(client.list_all, "oncalls", params={"schedule_ids": ["PSCH001"]})
    assert [o["user"]["id"] for o in scheduled] == ["PUSR001"]
    pd.add_oncall("PUSR001", "PEPL001", 1, schedule_id="PSCH001", start="2099-01-01T00:00:00Z")
    earliest = await run(
        client.list_all, "oncalls", params={"schedule_ids": ["PSCH001"], "earliest": "true"}
    )
    assert len(earliest) == 1 and earliest[0]["start"] == first["start"]
    assert await run(client.list_all, "oncalls", params={"escalation_policy_ids": ["PX"]}) == []


async def test_users_services_policies_priorities_and_abilities_are_served(
    pd: FakePagerDuty, client: Any
) -> None:
    users = await run(client.list_all, "users")
    assert {u["email"] for u in users} >= {
        "oncall@waqiti.example",
        MANAGER,
        "cto@waqiti.example",
        BOT,
    }
    manager = await run(client.find, "users", MANAGER, attribute="email")
    assert manager["name"] == "Erin Manager"
    assert (await run(client.rget, f"users/{manager['id']}"))["email"] == MANAGER
    service = await run(client.rget, "services/PSVC001")
    assert service["name"] == "payments"
    assert service["escalation_policy"]["id"] == "PEPL001"
    policy = await run(client.rget, "escalation_policies/PEPL001")
    assert [len(r["targets"]) for r in policy["escalation_rules"]] == [1, 1, 1]
    assert [p["name"] for p in await run(client.list_all, "priorities")] == [
        "P1",
        "P2",
        "P3",
        "P4",
        "P5",
    ]
    assert await run(client.account_has_ability, "teams") is True
    resp = await _http_error(client.rget, "users/PNOPE")
    assert resp.status_code == 404


async def test_constructor_arguments_add_users_and_oncalls(tls: LocalTLS) -> None:
    extra = User("PUSR900", "Sam SRE", "sre@waqiti.example")
    async with FakePagerDuty(
        tls=tls, extra_users=[extra], extra_oncalls=[OnCall("PUSR900", "PEPL001", 1)]
    ) as fake:
        client = _rest(fake, email="sre@waqiti.example")
        incident = await run(client.rpost, "incidents", json=_new_incident())
        assert {a["assignee"]["id"] for a in incident["assignments"]} == {"PUSR001", "PUSR900"}
        assert incident["last_status_change_by"]["id"] == "PUSR900"
        _close_clients()


# ---------------------------------------------------------------------- fault injection


async def test_forced_429_is_retried_by_the_client_and_surfaces_with_retry_after_when_bounded(
    pd: FakePagerDuty, client: Any
) -> None:
    pd.fail("listPriorities", status=429, retry_after=3)
    assert len(await run(client.list_all, "priorities")) == 5  # one retry, then fine
    assert [c.status for c in pd.calls_to("listPriorities")] == [429, 200]

    client.retry[429] = 1
    pd.fail("GET /priorities", status=429, retry_after=7, times=2)
    resp = await _http_error(client.rget, "priorities")
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()["error"]["message"] == "Rate Limit Exceeded"
    assert [c.status for c in pd.calls_to("listPriorities")][-2:] == [429, 429]


async def test_forced_5xx_is_a_server_error_for_the_given_number_of_calls(
    pd: FakePagerDuty, client: Any
) -> None:
    pd.fail("createIncident", status=503, times=2)
    for _ in range(2):
        with pytest.raises(pagerduty.ServerHttpError) as info:
            await run(client.rpost, "incidents", json=_new_incident())
        assert info.value.response is not None
        assert info.value.response.status_code == 503
    await run(client.rpost, "incidents", json=_new_incident())
    assert [c.status for c in pd.calls_to("POST /incidents")] == [503, 503, 201]
    assert len(pd.incidents) == 1
    with pytest.raises(ValueError, match="unknown route"):
        pd.fail("createIncidnet")


async def test_events_client_retries_a_forced_500_on_enqueue(
    pd: FakePagerDuty, events: Any
) -> None:
    pd.fail("POST /v2/enqueue", status=500)
    assert await run(events.trigger, "disk full", "db-1", dedup_key="disk") == "disk"
    assert [c.status for c in pd.calls_to("createV2Event")] == [500, 202]
    assert len(pd.incidents) == 1


# ---------------------------------------------------------------------- Events API v2


async def test_events_trigger_is_202_and_an_open_dedup_key_folds_into_one_incident(
    pd: FakePagerDuty, events: Any
) -> None:
    key = await run(events.trigger, "DB CPU 99%", "db-1", dedup_key="db-cpu", severity="error")
    assert key == "db-cpu"
    assert pd.calls[-1].status == 202
    assert await run(events.trigger, "DB CPU 99%", "db-1", dedup_key="db-cpu") == "db-cpu"
    assert len(pd.incidents) == 1
    incident = pd.incident_by_key("db-cpu")
    assert incident is not None
    assert incident["title"] == "DB CPU 99%" and incident["urgency"] == "high"
    assert incident["last_status_change_by"]["type"] == "service_reference"
    generated = await run(events.trigger, "queue backlog", "mq-1", severity="warning")
    assert len(generated) == 32 and _by_key(pd, generated)["urgency"] == "low"


async def test_events_acknowledge_and_resolve_act_on_the_dedup_keys_incident(
    pd: FakePagerDuty, events: Any
) -> None:
    await run(events.trigger, "disk full", "db-1", dedup_key="disk")
    await run(events.acknowledge, "disk")
    assert _by_key(pd, "disk")["status"] == "acknowledged"
    await run(events.resolve, "disk")
    assert _by_key(pd, "disk")["status"] == "resolved"
    assert await run(events.resolve, "never-seen") == "never-seen"  # still 202
    await run(events.trigger, "disk full again", "db-1", dedup_key="disk")
    assert len(pd.incidents) == 2
    assert [e["event_action"] for e in pd.events] == [
        "trigger",
        "acknowledge",
        "resolve",
        "resolve",
        "trigger",
    ]
    assert all(c.body["routing_key"] == "<redacted>" for c in pd.calls_to("createV2Event"))


async def test_invalid_event_is_400_with_status_message_and_errors(
    pd: FakePagerDuty, events: Any, tls: LocalTLS
) -> None:
    resp = await _http_error(
        events.send_event, "trigger", payload={"summary": "x", "source": "y", "severity": "bad"}
    )
    assert resp.status_code == 400
    body = resp.json()
    assert body["status"] == "invalid event" and body["message"] == "Event object is invalid"
    assert any("severity" in e for e in body["errors"])
    wrong_key = pagerduty.EventsApiV2Client(
        "0" * 32, base_url=pd.events_url, verify=tls.client_context()
    )
    _quick(wrong_key)
    resp = await _http_error(wrong_key.trigger, "x", "y")
    assert resp.json()["errors"] == ["Invalid routing key"]
    assert pd.incidents == {}


# ---------------------------------------------------------------------- webhooks V3


def _expected_signature(secret: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_webhook_signature_is_hmac_sha256_of_the_raw_body_for_one_secret(
    pd: FakePagerDuty, receiver: Receiver
) -> None:
    incident = pd.trigger_alert("checkout errors", dedup_key="co")
    status = await pd.send_webhook(
        receiver.url, "incident.triggered", incident["id"], secrets=["s3cret"], webhook_id="wh-1"
    )
    assert status == 202
    headers, body = receiver.received[0]
    assert headers["X-PagerDuty-Signature"] == _expected_signature("s3cret", body)
    assert verify_webhook_signature(body, headers["X-PagerDuty-Signature"], "s3cret")
    assert not verify_webhook_signature(body, headers["X-PagerDuty-Signature"], "other")
    assert headers["X-Webhook-Id"] == "wh-1"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "PagerDuty-Webhook/V3.0"
    event = json.loads(body)["event"]
    assert event["event_type"] == "incident.triggered"
    assert event["resource_type"] == "incident"
    assert event["agent"] is None
    assert event["data"]["id"] == incident["id"] and event["data"]["type"] == "incident"


async def test_webhook_signature_during_rotation_carries_one_v1_per_secret(
    pd: FakePagerDuty, receiver: Receiver
) -> None:
    incident = pd.trigger_alert("checkout errors")
    await pd.send_webhook(
        receiver.url, "incident.resolved", incident["id"], secrets=["old", "new"], agent=MANAGER
    )
    headers, body = receiver.received[0]
    header = headers["X-PagerDuty-Signature"]
    assert header == f"{_expected_signature('old', body)},{_expected_signature('new', body)}"
    assert header == sign_webhook(body, ["old", "new"])
    assert verify_webhook_signature(body, header, "old")
    assert verify_webhook_signature(body, header, "new")
    assert json.loads(body)["event"]["agent"]["id"] == "PUSR002"


async def test_subscription_gets_webhooks_for_each_change_with_the_from_user_as_agent(
    pd: FakePagerDuty, client: Any, receiver: Receiver
) -> None:
    pd.subscribe(receiver.url, "sub-secret")
    changes: list[str] = []
    pd.on_change.append(lambda kind, obj: changes.append(kind))
    incident = await run(client.rpost, "incidents", json=_new_incident())
    await run(client.rput, incident, json={"type": "incident_reference", "status": "acknowledged"})
    await run(client.rpost, f"incidents/{incident['id']}/notes", json={"content": "on it"})
    await run(client.rput, incident, json={"type": "incident_reference", "priority": "P1"})
    await run(client.rput, incident, json={"type": "incident_reference", "escalation_level": 2})
    pd.update_incident(incident["id"], by=MANAGER, status="resolved")  # a human, in PagerDuty
    await pd.drain_webhooks()
    expected = [
        "incident.triggered",
        "incident.acknowledged",
        "incident.annotated",
        "incident.priority_updated",
        "incident.escalated",
        "incident.resolved",
    ]
    assert receiver.event_types() == expected
    assert changes == expected
    agents = [p["event"]["agent"]["id"] for p in receiver.payloads()]
    assert agents == ["PUSR004"] * 5 + ["PUSR002"]  # the bot can skip its own changes
    for headers, body in receiver.received:
        assert verify_webhook_signature(body, headers["X-PagerDuty-Signature"], "sub-secret")
    note_event = receiver.payloads()[2]["event"]
    assert note_event["data"]["type"] == "incident_note"
    assert note_event["data"]["content"] == "on it"
    assert receiver.payloads()[3]["event"]["data"]["priority"]["summary"] == "P1"
    assert receiver.payloads()[-1]["event"]["data"]["status"] == "resolved"


async def test_failed_webhook_is_retried_with_the_same_webhook_id(
    pd: FakePagerDuty, receiver: Receiver
) -> None:
    pd.subscribe(receiver.url, "s", events=["incident.triggered"])
    receiver.statuses = [500, 429]
    pd.trigger_alert("flappy")
    await pd.drain_webhooks()
    ids = [h["X-Webhook-Id"] for h, _ in receiver.received]
    assert len(ids) == 3 and len(set(ids)) == 1
    assert len({body for _, body in receiver.received}) == 1
    assert pd.webhooks[-1].status == 202 and pd.webhooks[-1].attempts == 3


async def test_wait_for_returns_when_true_and_raises_timeout_error(pd: FakePagerDuty) -> None:
    await pd.wait_for(lambda: True, timeout=0.1)
    with pytest.raises(TimeoutError):
        await pd.wait_for(lambda: False, timeout=0.05)


# ---------------------------------------------------------------------- shapes vs the spec


def _spec() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(REST_SPEC.read_text())
    return loaded


def _deref(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].lstrip("#/").split("/"):
            key = part.replace("~1", "/").replace("~0", "~")
            node = node[int(key)] if isinstance(node, list) else node[key]
        schema = node
    return schema


def _flatten(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Merge allOf parts into one schema (properties, required, type, enum)."""
    schema = _deref(spec, schema)
    if "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {"properties": {}, "required": []}
    for part in [*schema["allOf"], {k: v for k, v in schema.items() if k != "allOf"}]:
        flat = _flatten(spec, part)
        merged["properties"].update(flat.get("properties", {}))
        merged["required"] += flat.get("required", [])
        for k in ("type", "enum", "oneOf"):
            if k in flat:
                merged[k] = flat[k]
    return merged


def _violations(spec: dict[str, Any], value: Any, schema: dict[str, Any], at: str) -> list[str]:
    """Type, enum, required and unknown-key problems of ``value`` against ``schema``."""
    schema = _flatten(spec, schema)
    if value is None:  # PagerDuty sends null for unset optional fields
        return []
    if "oneOf" in schema or "anyOf" in schema:
        options = schema.get("oneOf") or schema.get("anyOf") or []
        results = [_violations(spec, value, option, at) for option in options]
        return [] if any(not r for r in results) else min(results, key=len)
    kind = schema.get("type")
    types: dict[str, type | tuple[type, ...]] = {
        "string": str,
        "integer": int,
        "boolean": bool,
        "array": list,
        "object": dict,
        "number": (int, float),
    }
    if kind in types and not isinstance(value, types[kind]):
        return [f"{at}: {type(value).__name__} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} not in {schema['enum']}"]
    problems: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        problems += [
            f"{at}.{k}: required but missing" for k in schema.get("required", []) if k not in value
        ]
        for k, v in value.items():
            if k in props:
                problems += _violations(spec, v, props[k], f"{at}.{k}")
            elif (
                props
                and k not in schema.get("required", [])
                and not schema.get("additionalProperties")
            ):
                problems.append(f"{at}.{k}: not in the schema")
    if isinstance(value, list) and "items" in schema:
        for n, item in enumerate(value):
            problems += _violations(spec, item, schema["items"], f"{at}[{n}]")
    return problems


def _log_entry_schema(kind: str) -> str:
    """The log entry subtype's schema. AcknowledgeLogEntry's type enum says
    "acknowledgement_log_entry" where LogEntry's says "acknowledge_log_entry" (what PagerDuty
    sends), so acknowledgements are checked against the base LogEntry."""
    if kind == "acknowledge_log_entry":
        return "LogEntry"
    return "".join(w.capitalize() for w in kind.split("_")[:-2]) + "LogEntry"


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


@needs_specs
async def test_incident_objects_have_the_spec_schemas_required_fields_and_no_unknown_keys(
    pd: FakePagerDuty, client: Any
) -> None:
    spec = _spec()
    incident_schema = _flatten(spec, _schema("Incident"))
    created = await run(
        client.rpost,
        "incidents",
        json=_new_incident(
            incident_key="shape",
            priority={"id": "PPRI003", "type": "priority_reference"},
            body={"type": "incident_body", "details": "d"},
            conference_bridge={"conference_number": "+44 20 0000 0000"},
        ),
    )
    await run(client.rput, created, json={"type": "incident_reference", "status": "acknowledged"})
    await run(
        client.rpost,
        f"incidents/{created['id']}/responder_requests",
        json={
            "requester_id": "PUSR004",
            "message": "help",
            "responder_request_targets": [
                {
                    "responder_request_target": {
                        "id": "PEPL001",
                        "type": "escalation_policy_reference",
                    }
                }
            ],
        },
    )
    pd.trigger_alert("from monitoring")
    samples = [created, await run(client.rget, created)]
    samples += await run(client.list_all, "incidents")
    samples.append(await run(client.rput, created, json={"type": "incident", "status": "resolved"}))
    # The spec types IncidentBody.details as an object, yet its own createIncident example
    # (and PagerDuty) send and return a string: the one mismatch the check tolerates.
    example = spec["paths"]["/incidents"]["post"]["requestBody"]["content"]["application/json"]
    assert isinstance(example["examples"]["request"]["value"]["incident"]["body"]["details"], str)
    # Likewise ResponderRequest's schema lists targets flat, while the spec's own response
    # example (followed here) wraps each one in "responder_request_target".
    rr = spec["paths"]["/incidents/{id}/responder_requests"]["post"]["responses"]["200"]
    rr_example = rr["content"]["application/json"]["examples"]["response"]["value"]
    targets = rr_example["responder_request"]["responder_request_targets"]
    assert list(targets[0]) == ["responder_request_target"]

    def tolerated(problem: str) -> bool:
        return problem == "incident.body.details: str is not object" or (
            ".responder_request_targets[" in problem
            and problem.endswith("].responder_request_target: not in the schema")
        )

    for incident in samples:
        missing = [k for k in incident_schema.get("required", []) if k not in incident]
        assert missing == []
        assert set(incident) - set(incident_schema["properties"]) == set()
        problems = _violations(spec, incident, _schema("Incident"), "incident")
        assert [p for p in problems if not tolerated(p)] == []
    note = await run(client.rpost, f"incidents/{created['id']}/notes", json={"content": "n"})
    checks: list[tuple[Any, str]] = [
        (note, "IncidentNote"),
        (await run(client.rget, "users/PUSR001"), "User"),
        (await run(client.rget, "services/PSVC001"), "Service"),
        (await run(client.rget, "escalation_policies/PEPL001"), "EscalationPolicy"),
        *[(o, "Oncall") for o in await run(client.list_all, "oncalls")],
        *[(p, "Priority") for p in await run(client.list_all, "priorities")],
        *[
            (e, _log_entry_schema(e["type"]))
            for e in await run(client.list_all, f"incidents/{created['id']}/log_entries")
        ],
    ]
    for obj, name in checks:
        assert _violations(spec, obj, _schema(name), name) == []


@needs_specs
async def test_webhook_envelopes_have_the_keys_of_the_published_examples(
    pd: FakePagerDuty, client: Any, receiver: Receiver
) -> None:
    example = json.loads((EXAMPLES / "payload_incident.priority_updated.json").read_text())
    incident_data = json.loads((EXAMPLES / "data_incident.json").read_text())
    note_data = json.loads((EXAMPLES / "data_incident_note.json").read_text())
    responder_data = json.loads((EXAMPLES / "data_incident_responder.json").read_text())
    pd.subscribe(receiver.url, "k")
    incident = await run(client.rpost, "incidents", json=_new_incident())
    await run(client.rput, incident, json={"type": "incident_reference", "priority": "P1"})
    await run(client.rpost, f"incidents/{incident['id']}/notes", json={"content": "n"})
    await run(
        client.rpost,
        f"incidents/{incident['id']}/responder_requests",
        json={
            "requester_id": "PUSR004",
            "message": "help",
            "responder_request_targets": [
                {"responder_request_target": {"id": "PUSR003", "type": "user_reference"}}
            ],
        },
    )
    await pd.drain_webhooks()
    by_type = {p["event"]["event_type"]: p for p in receiver.payloads()}
    assert set(by_type) == {
        "incident.triggered",
        "incident.priority_updated",
        "incident.annotated",
        "incident.responder.added",
    }
    for payload in by_type.values():
        assert payload.keys() == example.keys()
        assert payload["event"].keys() == example["event"].keys()
        assert payload["event"]["agent"].keys() == example["event"]["agent"].keys()
        assert payload["event"]["client"] == example["event"]["client"]
    updated = by_type["incident.priority_updated"]["event"]["data"]
    assert updated.keys() == incident_data.keys()
    assert set(example["event"]["data"]) <= set(updated)
    assert updated["priority"].keys() == example["event"]["data"]["priority"].keys()
    assert updated["service"].keys() == example["event"]["data"]["service"].keys()
    assert by_type["incident.triggered"]["event"]["data"].keys() == incident_data.keys()
    assert by_type["incident.annotated"]["event"]["data"].keys() == note_data.keys()
    assert by_type["incident.responder.added"]["event"]["data"].keys() == responder_data.keys()
