"""The Spring Boot actuator / resilience4j / feature-flag stand-in, over real HTTP."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.actuator import ACTUATOR_V3, FakeActuator

try:
    jsonschema: Any = importlib.import_module("jsonschema")
except ImportError:  # pragma: no cover - jsonschema is a dev dependency
    jsonschema = None

SPECS = Path(__file__).resolve().parents[1] / "specs"  # authored for this project: tests/specs
ACTUATOR_SPEC = SPECS / "actuator"
SCHEMA_FILE = ACTUATOR_SPEC / "actuator_response_schemas.json"
HAVE_SCHEMA = jsonschema is not None and SCHEMA_FILE.is_file()

SERVICES = ("payments", "orders")
FLAG_TOKEN = "flag-admin-token"

Fetch = Callable[..., Any]


@pytest.fixture
async def act() -> AsyncIterator[FakeActuator]:
    async with FakeActuator(services=SERVICES, flag_token=FLAG_TOKEN) as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def get(act: FakeActuator, http: aiohttp.ClientSession) -> Callable[..., Any]:
    async def fetch(
        service: str,
        path: str,
        *,
        method: str = "GET",
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> tuple[int, Any, str]:
        url = act.url_template.format(service=service) + path
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        async with http.request(method, url, json=body, headers=hdrs, params=params) as resp:
            text = await resp.text()
            parsed = json.loads(text) if text else None
            return resp.status, parsed, resp.headers.get("Content-Type", "")

    return fetch


def check_schema(body: Any, definition: str) -> None:
    """Validate against actuator_response_schemas.json when jsonschema and the specs exist."""
    if not HAVE_SCHEMA:
        return
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})
    errors = [e.message for e in validator.iter_errors(body)]
    assert errors == [], f"{definition}: {errors}"


def example(name: str) -> Any:
    return json.loads((ACTUATOR_SPEC / "examples" / name).read_text())


# ---------------------------------------------------------------------- plumbing


async def test_url_template_reaches_each_service_on_loopback(act: FakeActuator, get: Fetch) -> None:
    assert act.url_template.startswith("http://127.0.0.1:")
    assert act.url_template.endswith("/{service}")
    for service in (*SERVICES, "config-service"):
        status, body, _ = await get(service, "/actuator/health")
        assert (status, body["status"]) == (200, "UP")
    assert [c.service for c in act.calls] == [*SERVICES, "config-service"]
    assert all(c.endpoint == "health" for c in act.calls)


async def test_unknown_service_and_unknown_path_are_404_spring_errors(get: Fetch) -> None:
    status, body, ctype = await get("nosuch", "/actuator/health")
    assert (
        status == 404 and body["error"] == "Not Found" and body["path"] == "/nosuch/actuator/health"
    )
    assert ctype.startswith("application/json")
    status, body, _ = await get("payments", "/actuator/env")
    assert status == 404 and body["status"] == 404


@pytest.mark.skipif(not HAVE_SCHEMA, reason="jsonschema or the actuator schema is not available")
async def test_schema_validation_is_active(act: FakeActuator) -> None:
    with pytest.raises(AssertionError):
        check_schema({"names": "not-a-list"}, "MetricNames")


# ---------------------------------------------------------------------- health


async def test_health_up_matches_schema_with_actuator_media_type(get: Fetch) -> None:
    status, body, ctype = await get("payments", "/actuator/health")
    assert status == 200
    check_schema(body, "Health")
    assert list(body["components"]) == ["db", "diskSpace", "ping"]
    assert ctype.startswith(ACTUATOR_V3)
    _, _, ctype = await get("payments", "/actuator/health", headers={"Accept": "application/json"})
    assert ctype.startswith("application/json")


async def test_health_down_is_503_with_json_body_and_component_paths(
    act: FakeActuator, get: Fetch
) -> None:
    act.set_component(
        "payments",
        "db",
        "DOWN",
        {
            "error": "org.springframework.jdbc.CannotGetJdbcConnectionException: Failed to obtain "
            "JDBC Connection"
        },
    )
    status, body, _ = await get("payments", "/actuator/health")
    assert (status, body["status"]) == (503, "DOWN")
    check_schema(body, "Health")
    status, db, _ = await get("payments", "/actuator/health/db")
    assert status == 503
    assert db["details"]["error"].startswith("org.springframework.jdbc")
    check_schema(db, "HealthComponent")
    status, disk, _ = await get("payments", "/actuator/health/diskSpace")
    assert (status, disk["status"]) == (200, "UP")
    status, missing, _ = await get("payments", "/actuator/health/kafka")
    assert (status, missing) == (404, None)
    status, orders, _ = await get("orders", "/actuator/health")
    assert (status, orders["status"]) == (200, "UP")


async def test_explicit_out_of_service_is_503_and_unknown_only_codes_aggregate_to_unknown(
    act: FakeActuator, get: Fetch
) -> None:
    act.set_health("orders", "OUT_OF_SERVICE")
    status, body, _ = await get("orders", "/actuator/health")
    assert (status, body["status"]) == (503, "OUT_OF_SERVICE")
    act.set_health("orders", components={"custom": "WARMING"})
    status, body, _ = await get("orders", "/actuator/health")
    assert (status, body["status"]) == (200, "UNKNOWN")


async def test_nested_health_instances_are_addressable(act: FakeActuator, get: Fetch) -> None:
    act.set_health("payments", components=example("health_up_with_db.json")["components"])
    status, body, _ = await get("payments", "/actuator/health")
    assert status == 200 and body == example("health_up_with_db.json")
    status, us1, _ = await get("payments", "/actuator/health/broker/us1")
    assert (status, us1) == (200, {"status": "UP", "details": {"version": "1.0.2"}})


# ---------------------------------------------------------------------- metrics


async def test_metric_names_are_sorted_and_match_schema(act: FakeActuator, get: Fetch) -> None:
    act.set_metric("payments", "kafka.consumer.lag", 42.0, tags={"topic": "payments.events"})
    status, body, _ = await get("payments", "/actuator/metrics")
    assert status == 200
    check_schema(body, "MetricNames")
    assert body["names"] == sorted(body["names"])
    assert {"kafka.consumer.lag", "http.server.requests", "jvm.memory.used"} <= set(body["names"])


async def test_metric_tag_filter_merges_matching_meters_and_drops_drilled_tags(
    act: FakeActuator, get: Fetch
) -> None:
    status, whole, _ = await get("payments", "/actuator/metrics/http.server.requests")
    assert status == 200
    check_schema(whole, "Metric")
    stats = {m["statistic"]: m["value"] for m in whole["measurements"]}
    assert stats == {"COUNT": 1503.0, "TOTAL_TIME": 45.3, "MAX": 0.8}
    assert whole["baseUnit"] == "seconds" and whole["description"] is None
    tags = {t["tag"]: t["values"] for t in whole["availableTags"]}
    assert tags["status"] == ["200", "500"]

    status, errors, _ = await get(
        "payments",
        "/actuator/metrics/http.server.requests",
        params=[("tag", "status:500"), ("tag", "method:GET")],
    )
    assert status == 200
    check_schema(errors, "Metric")
    assert {m["statistic"]: m["value"] for m in errors["measurements"]}["COUNT"] == 3.0
    remaining = {t["tag"] for t in errors["availableTags"]}
    assert "status" not in remaining and "method" not in remaining and "outcome" in remaining

    status, body, _ = await get(
        "payments", "/actuator/metrics/http.server.requests", params={"tag": "status:418"}
    )
    assert (status, body) == (404, None)
    status, body, _ = await get(
        "payments", "/actuator/metrics/http.server.requests", params={"tag": "status"}
    )
    assert status == 400
    status, body, _ = await get("payments", "/actuator/metrics/does.not.exist")
    assert (status, body) == (404, None)


async def test_gauge_set_by_test_reads_back_like_the_example(act: FakeActuator, get: Fetch) -> None:
    act.remove_metric("payments", "hikaricp.connections.active")
    act.set_metric(
        "payments",
        "hikaricp.connections.active",
        10,
        tags={"pool": "HikariPool-1"},
        description="Active connections",
    )
    status, body, _ = await get("payments", "/actuator/metrics/hikaricp.connections.active")
    assert status == 200
    assert body == example("metric_hikaricp_connections_active.json")
    check_schema(body, "Metric")


# ---------------------------------------------------------------------- circuit breakers


def _seed_example_breakers(act: FakeActuator) -> None:
    act.set_breaker("payments", "inventoryService", "CLOSED", buffered_calls=3)
    act.set_breaker(
        "payments",
        "paymentService",
        "OPEN",
        failure_rate=60.0,
        slow_call_rate=0.0,
        buffered_calls=10,
        failed_calls=6,
        not_permitted_calls=3,
    )


async def test_circuitbreakers_list_matches_schema_and_the_example_byte_for_byte(
    act: FakeActuator, get: Fetch
) -> None:
    _seed_example_breakers(act)
    status, body, _ = await get("payments", "/actuator/circuitbreakers")
    assert status == 200
    check_schema(body, "CircuitBreakers")
    assert body == example("circuitbreakers.json")
    assert list(body["circuitBreakers"]) == ["inventoryService", "paymentService"]


async def test_breaker_update_state_transitions_follow_resilience4j(
    act: FakeActuator, get: Fetch
) -> None:
    _seed_example_breakers(act)
    path = "/actuator/circuitbreakers/paymentService"
    status, body, _ = await get("payments", path, method="POST", body={"updateState": "FORCE_OPEN"})
    assert status == 200
    check_schema(body, "CircuitBreakerUpdateStateResponse")
    assert body == {
        "circuitBreakerName": "paymentService",
        "currentState": "FORCED_OPEN",
        "message": "paymentService state has been changed successfully",
    }
    assert act.breaker("payments", "paymentService").state == "FORCED_OPEN"

    status, body, _ = await get("payments", path, method="POST", body={"updateState": "CLOSE"})
    assert (status, body["currentState"]) == (200, "CLOSED")
    _, listing, _ = await get("payments", "/actuator/circuitbreakers")
    closed = listing["circuitBreakers"]["paymentService"]
    assert (closed["state"], closed["failureRate"], closed["bufferedCalls"]) == (
        "CLOSED",
        "-1.0%",
        0,
    )

    status, body, _ = await get("payments", path, method="POST", body={"updateState": "DISABLE"})
    assert (status, body["currentState"]) == (200, "DISABLED")

    for bad in ({"updateState": "HALF_OPEN"}, {"updateState": "open"}, {}):
        status, body, _ = await get("payments", path, method="POST", body=bad)
        assert status == 400, bad
        assert body["error"] == "Bad Request"
    assert act.breaker("payments", "paymentService").state == "DISABLED"

    status, body, _ = await get(
        "payments",
        "/actuator/circuitbreakers/brandNew",
        method="POST",
        body={"updateState": "CLOSE"},
    )
    assert (status, body["currentState"]) == (200, "CLOSED")
    status, _, _ = await get("payments", path)
    assert status == 405, "resilience4j has no read operation for a single breaker"


async def test_open_breaker_shows_in_health_and_as_state_meter(
    act: FakeActuator, get: Fetch
) -> None:
    _seed_example_breakers(act)
    act.set_breaker("payments", "inventoryService", "CLOSED", register_health_indicator=False)
    status, health, _ = await get("payments", "/actuator/health")
    assert (status, health["status"]) == (200, "UP")
    check_schema(health, "Health")
    expected = example("health_with_circuitbreakers.json")["components"]["circuitBreakers"]
    assert health["components"]["circuitBreakers"] == expected

    status, gauge, _ = await get(
        "payments",
        "/actuator/metrics/resilience4j.circuitbreaker.state",
        params=[("tag", "name:paymentService"), ("tag", "state:open")],
    )
    assert status == 200
    assert gauge["measurements"] == [{"statistic": "VALUE", "value": 1.0}]

    act.set_breaker("payments", "paymentService", "OPEN", allow_health_indicator_to_fail=True)
    status, health, _ = await get("payments", "/actuator/health")
    assert (status, health["status"]) == (503, "DOWN")


# ---------------------------------------------------------------------- fault injection


async def test_slow_response_trips_a_client_timeout_and_the_next_call_is_fast(
    act: FakeActuator, http: aiohttp.ClientSession
) -> None:
    act.slow("payments", "health", delay=0.5)
    url = act.service_url("payments") + "/actuator/health"
    with pytest.raises(asyncio.TimeoutError):
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=0.1)) as resp:
            await resp.read()
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
        assert resp.status == 200
    assert loop.time() - started < 0.4
    other = act.service_url("orders") + "/actuator/health"
    async with http.get(other, timeout=aiohttp.ClientTimeout(total=1)) as resp:
        assert resp.status == 200


async def test_injected_status_fails_only_the_matching_endpoint_then_recovers(
    act: FakeActuator, get: Fetch
) -> None:
    act.fail("payments", "metrics", status=500)
    act.fail("orders", status=503, body={"custom": "gateway says no"})
    status, body, _ = await get("payments", "/actuator/health")
    assert status == 200
    status, body, _ = await get("payments", "/actuator/metrics")
    assert (status, body["error"]) == (500, "Internal Server Error")
    status, body, _ = await get("orders", "/actuator/circuitbreakers")
    assert (status, body) == (503, {"custom": "gateway says no"})
    status, _, _ = await get("payments", "/actuator/metrics")
    assert status == 200
    assert [c.status for c in act.calls_to("payments", "metrics")] == [500, 200]


async def test_stop_does_not_wait_for_a_pending_slow_response() -> None:
    fake = FakeActuator(services=["payments"])
    await fake.start()
    fake.slow("payments", delay=30)

    async def call() -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(fake.service_url("payments") + "/actuator/health") as resp,
        ):
            await resp.read()

    task = asyncio.create_task(call())
    await fake.wait_for(lambda: not fake._faults)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await fake.stop()
    assert loop.time() - started < 2
    await asyncio.gather(task, return_exceptions=True)


# ---------------------------------------------------------------------- feature flags


async def test_flag_endpoint_requires_the_bearer_token(act: FakeActuator, get: Fetch) -> None:
    act.set_flag("payments.new-checkout", True)
    for token in (None, "wrong"):
        status, body, _ = await get(
            "config-service", "/admin/flags/payments.new-checkout", token=token
        )
        assert (status, body["error"]) == (401, "unauthorized")
    status, body, _ = await get(
        "config-service", "/admin/flags/payments.new-checkout", token=FLAG_TOKEN
    )
    assert status == 200
    assert (body["name"], body["value"], body["version"]) == ("payments.new-checkout", True, 1)
    assert all(FLAG_TOKEN not in json.dumps(c.body) for c in act.calls)


async def test_flag_put_sets_value_bumps_version_and_records_the_change(
    act: FakeActuator, get: Fetch
) -> None:
    act.set_flag("payments.new-checkout", True, description="new checkout flow")
    path = "/admin/flags/payments.new-checkout"
    status, body, _ = await get(
        "config-service",
        path,
        method="PUT",
        token=FLAG_TOKEN,
        body={"value": False, "expectedVersion": 1, "actor": "icbot", "reason": "INC-7 rollback"},
    )
    assert status == 200
    assert body["value"] is False and body["previousValue"] is True
    assert (body["version"], body["updatedBy"]) == (2, "icbot")
    assert act.flag("payments.new-checkout") is False
    (change,) = act.flag_changes
    assert (change.old, change.new, change.actor, change.reason) == (
        True,
        False,
        "icbot",
        "INC-7 rollback",
    )

    status, body, _ = await get(
        "config-service",
        path,
        method="PUT",
        token=FLAG_TOKEN,
        body={"value": True, "expectedVersion": 1},
    )
    assert (status, body["error"], body["currentVersion"]) == (409, "version_conflict", 2)
    status, body, _ = await get(
        "config-service", path, method="PUT", token=FLAG_TOKEN, body={"enabled": True}
    )
    assert (status, body["error"]) == (400, "invalid_body")
    status, body, _ = await get(
        "config-service", "/admin/flags/typo", method="PUT", token=FLAG_TOKEN, body={"value": 1}
    )
    assert (status, body["error"]) == (404, "flag_not_found")
    status, listing, _ = await get("config-service", "/admin/flags", token=FLAG_TOKEN)
    assert status == 200 and [f["name"] for f in listing["flags"]] == ["payments.new-checkout"]
    status, _, _ = await get("payments", "/admin/flags", token=FLAG_TOKEN)
    assert status == 404, "only the config service has the flag admin endpoint"
