"""The Kubernetes API stand-in, driven through the real kubernetes_asyncio client over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.kubernetes import (
    DESIRED_REPLICAS,
    HASH_LABEL,
    RESTARTED_AT,
    REVISION,
    REVISION_HISTORY,
    FakeKubernetes,
)

kubernetes_asyncio = pytest.importorskip("kubernetes_asyncio")
from kubernetes_asyncio import client, config, watch  # noqa: E402
from kubernetes_asyncio.client.exceptions import ApiException  # noqa: E402

SPECS = Path(__file__).resolve().parents[1] / "specs"  # vendored, Apache-2.0: tests/specs
K8S_SPEC = SPECS / "kubernetes" / "k8s_openapi_v2_subset.json"

NS = "payments"
DEP = "payments-api"
GOOD = "registry.example/payments:1.3.0"
OLDER = "registry.example/payments:1.2.0"
BAD = "registry.example/payments:1.4.0"


class Clock:
    def __init__(self, start: float = 1_714_564_800.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def k8s(clock: Clock) -> AsyncIterator[FakeKubernetes]:
    async with FakeKubernetes(clock=clock) as fake:
        fake.add_deployment(
            NS,
            DEP,
            GOOD,
            replicas=3,
            labels={"app": DEP, "team": "payments"},
            history=[OLDER],
        )
        fake.add_deployment(NS, "ledger", "registry.example/ledger:2.0.0", replicas=1)
        yield fake


@pytest.fixture
async def api(k8s: FakeKubernetes) -> AsyncIterator[Any]:
    cfg = client.Configuration(
        host=k8s.url,
        api_key={"BearerToken": k8s.token},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    async with client.ApiClient(cfg) as api_client:
        yield api_client


@pytest.fixture
def apps(api: Any) -> Any:
    return client.AppsV1Api(api)


@pytest.fixture
def core(api: Any) -> Any:
    return client.CoreV1Api(api)


async def _raw(
    k8s: FakeKubernetes, path: str, *, token: str | None = None, method: str = "GET"
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token or k8s.token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, k8s.url + path, headers=headers) as resp,
    ):
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


def _status_of(err: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(err.body or b"{}")
    return body


def _revision(obj: Any) -> int:
    return int((obj.metadata.annotations or {}).get(REVISION, "0"))


async def _owned_replicasets(apps: Any, dep: Any) -> list[Any]:
    selector = ",".join(f"{k}={v}" for k, v in dep.spec.selector.match_labels.items())
    items: list[Any] = []
    token = None
    while True:
        page = await apps.list_namespaced_replica_set(
            dep.metadata.namespace, label_selector=selector, limit=1, _continue=token
        )
        items += page.items
        token = page.metadata._continue
        if not token:
            break
    return [
        rs
        for rs in items
        if any(
            ref.controller and ref.uid == dep.metadata.uid
            for ref in rs.metadata.owner_references or []
        )
    ]


async def _kubectl_restart(apps: Any, ns: str, name: str, when: str) -> None:
    """What `kubectl rollout restart` sends (ROLLOUT_NOTES.md)."""
    dep = await apps.read_namespaced_deployment(name, ns)
    assert not dep.spec.paused
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: when}}}}}
    await apps.patch_namespaced_deployment(name, ns, patch)


async def _kubectl_undo(api: Any, apps: Any, ns: str, name: str) -> int:
    """What `kubectl rollout undo` sends; returns the revision rolled back to."""
    dep = await apps.read_namespaced_deployment(name, ns)
    history = sorted(await _owned_replicasets(apps, dep), key=_revision)
    assert len(history) >= 2, "no rollout history found"
    target = history[-2]
    template = api.sanitize_for_serialization(target.spec.template)
    template["metadata"]["labels"].pop(HASH_LABEL, None)
    keep = {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        "deployment.kubernetes.io/max-replicas",
    }
    annotations = {k: v for k, v in (dep.metadata.annotations or {}).items() if k in keep}
    annotations.update(
        {k: v for k, v in (target.metadata.annotations or {}).items() if k not in keep}
    )
    ops = [
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
    await apps.patch_namespaced_deployment(name, ns, ops)
    return _revision(target)


# ---------------------------------------------------------------------- plumbing and auth


async def test_stand_in_binds_loopback_and_serves_discovery(k8s: FakeKubernetes, api: Any) -> None:
    assert k8s.url.startswith("http://127.0.0.1:")
    versions = await client.CoreApi(api).get_api_versions()
    assert versions.versions == ["v1"]
    groups = await client.ApisApi(api).get_api_versions()
    assert [g.name for g in groups.groups] == ["apps"]
    resources = await client.AppsV1Api(api).get_api_resources()
    names = {r.name for r in resources.resources}
    assert {"deployments", "deployments/scale", "replicasets"} <= names
    core = await client.CoreV1Api(api).get_api_resources()
    assert {"pods", "pods/log", "events", "namespaces"} <= {r.name for r in core.resources}


async def test_request_without_or_with_wrong_token_is_401_status(k8s: FakeKubernetes) -> None:
    anonymous = client.Configuration(host=k8s.url)
    async with client.ApiClient(anonymous) as api_client:
        with pytest.raises(ApiException) as info:
            await client.AppsV1Api(api_client).list_namespaced_deployment(NS)
    assert info.value.status == 401
    assert _status_of(info.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    status, body = await _raw(k8s, "/api/v1/namespaces", token="wrong")
    assert status == 401 and body["reason"] == "Unauthorized"
    assert all("wrong" not in json.dumps(c.query) for c in k8s.calls)


async def test_kubeconfig_written_by_stand_in_loads_with_the_real_loader(
    k8s: FakeKubernetes, tmp_path: Path
) -> None:
    path = k8s.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    async with await config.new_client_from_config(config_file=str(path)) as api_client:
        deps = await client.AppsV1Api(api_client).list_namespaced_deployment(NS)
    assert sorted(d.metadata.name for d in deps.items) == ["ledger", DEP]
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(path), client_configuration=cfg)
    assert cfg.host == k8s.url


async def test_unknown_deployment_is_404_not_found_status_with_details(apps: Any) -> None:
    with pytest.raises(ApiException) as info:
        await apps.read_namespaced_deployment("nope", NS)
    assert info.value.status == 404
    assert _status_of(info.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"},
        "code": 404,
    }


async def test_namespaces_are_listed_and_unknown_namespace_is_404(core: Any) -> None:
    names = [n.metadata.name for n in (await core.list_namespace()).items]
    assert names == ["default", "kube-system", NS]
    ns = await core.read_namespace(NS)
    assert ns.status.phase == "Active"
    with pytest.raises(ApiException) as info:
        await core.read_namespace("ghost")
    assert _status_of(info.value)["message"] == 'namespaces "ghost" not found'


async def test_injected_500_and_429_are_status_objects_and_only_hit_the_matching_call(
    k8s: FakeKubernetes, apps: Any
) -> None:
    k8s.fail("deployments", verb="get", status=500, message="etcdserver: request timed out")
    k8s.fail("deployments", verb="list", status=429, retry_after=7)
    with pytest.raises(ApiException) as info:
        await apps.read_namespaced_deployment(DEP, NS)
    assert info.value.status == 500
    body = _status_of(info.value)
    assert body["reason"] == "InternalError"
    assert body["message"] == "Internal error occurred: etcdserver: request timed out"
    with pytest.raises(ApiException) as info:
        await apps.list_namespaced_deployment(NS)
    assert info.value.status == 429
    assert info.value.headers is not None and info.value.headers["Retry-After"] == "7"
    assert _status_of(info.value)["details"]["retryAfterSeconds"] == 7
    assert (await apps.read_namespaced_deployment(DEP, NS)).metadata.name == DEP
    assert [c.status for c in k8s.calls_to("deployments")] == [500, 429, 200]


async def test_injected_delay_with_no_status_is_slow_but_succeeds(
    k8s: FakeKubernetes, apps: Any
) -> None:
    k8s.fail("deployments", verb="get", status=None, delay=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    dep = await apps.read_namespaced_deployment(DEP, NS)
    assert dep.metadata.name == DEP
    assert loop.time() - started >= 0.2


# ---------------------------------------------------------------------- reads


async def test_list_deployments_by_label_selector_returns_only_matching(apps: Any) -> None:
    async def names(selector: str) -> list[str]:
        deps = await apps.list_namespaced_deployment(NS, label_selector=selector)
        return [d.metadata.name for d in deps.items]

    assert await names("team=payments") == [DEP]
    assert await names("app in (ledger, other)") == ["ledger"]
    assert await names("!team") == ["ledger"]
    assert await names("app!=ledger,team") == [DEP]
    assert await names("app=nothing") == []
    everything = await apps.list_deployment_for_all_namespaces()
    assert len(everything.items) == 2
    with pytest.raises(ApiException) as info:
        await apps.list_namespaced_deployment(NS, label_selector="app in (x")
    assert info.value.status == 400


async def test_seeded_deployment_has_revision_history_and_a_completed_rollout(
    k8s: FakeKubernetes, apps: Any
) -> None:
    dep = await apps.read_namespaced_deployment(DEP, NS)
    assert dep.metadata.annotations[REVISION] == "2"
    assert dep.status.observed_generation == dep.metadata.generation
    assert (dep.status.replicas, dep.status.updated_replicas) == (3, 3)
    assert (dep.status.ready_replicas, dep.status.available_replicas) == (3, 3)
    conditions = {c.type: c for c in dep.status.conditions}
    assert conditions["Available"].status == "True"
    assert conditions["Progressing"].reason == "NewReplicaSetAvailable"
    rss = sorted(await _owned_replicasets(apps, dep), key=_revision)
    assert [(_revision(rs), rs.spec.replicas) for rs in rss] == [(1, 0), (2, 3)]
    assert [rs.spec.template.spec.containers[0].image for rs in rss] == [OLDER, GOOD]
    for rs in rss:
        pod_hash = rs.metadata.labels[HASH_LABEL]
        assert rs.metadata.name == f"{DEP}-{pod_hash}"
        assert rs.spec.selector.match_labels[HASH_LABEL] == pod_hash
        assert rs.spec.template.metadata.labels[HASH_LABEL] == pod_hash
    assert k8s.rollout_status(NS, DEP).done


async def test_pods_are_listed_by_selector_and_carry_owner_and_hash_label(
    core: Any, apps: Any
) -> None:
    pods = await core.list_namespaced_pod(NS, label_selector=f"app={DEP}")
    assert len(pods.items) == 3
    current = max(
        await _owned_replicasets(apps, await apps.read_namespaced_deployment(DEP, NS)),
        key=_revision,
    )
    for pod in pods.items:
        assert pod.metadata.name.startswith(current.metadata.name + "-")
        assert pod.metadata.labels[HASH_LABEL] == current.metadata.labels[HASH_LABEL]
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.uid, owner.controller) == (
            "ReplicaSet",
            current.metadata.uid,
            True,
        )
        assert pod.status.phase == "Running"
        (cs,) = pod.status.container_statuses
        assert cs.ready and cs.restart_count == 0 and cs.image == GOOD
    one = await core.read_namespaced_pod(pods.items[0].metadata.name, NS)
    assert one.metadata.uid == pods.items[0].metadata.uid
    running = await core.list_namespaced_pod(NS, field_selector="status.phase=Running")
    assert len(running.items) == 4


async def test_list_pages_with_limit_and_continue(apps: Any) -> None:
    first = await apps.list_namespaced_replica_set(NS, limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    assert first.metadata.remaining_item_count == 1
    rest = await apps.list_namespaced_replica_set(NS, limit=2, _continue=first.metadata._continue)
    assert len(rest.items) == 1 and not rest.metadata._continue
    names = [rs.metadata.name for rs in first.items + rest.items]
    assert len(set(names)) == 3


async def test_pod_logs_honour_tail_lines_since_seconds_container_and_previous(
    k8s: FakeKubernetes, core: Any, clock: Clock
) -> None:
    pod = k8s.pods(NS, DEP)[0]["metadata"]["name"]
    full = await core.read_namespaced_pod_log(pod, NS)
    assert full.splitlines()[0] == f"Starting app ({GOOD})"
    clock.now += 120
    k8s.append_log(NS, pod, "WARN slow query on payments_ledger (2300 ms)")
    assert await core.read_namespaced_pod_log(pod, NS, tail_lines=1) == (
        "WARN slow query on payments_ledger (2300 ms)\n"
    )
    recent = await core.read_namespaced_pod_log(pod, NS, since_seconds=60, container="app")
    assert recent.splitlines() == ["WARN slow query on payments_ledger (2300 ms)"]
    stamped = await core.read_namespaced_pod_log(pod, NS, tail_lines=1, timestamps=True)
    assert stamped.startswith("2024-05-01T12:02:00.000000000Z WARN")
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_pod_log(pod, NS, container="sidecar")
    assert info.value.status == 400
    assert _status_of(info.value)["message"] == f"container sidecar is not valid for pod {pod}"
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_pod_log(pod, NS, previous=True)
    assert info.value.status == 400
    with pytest.raises(ApiException) as info:
        await core.read_namespaced_pod_log("ghost", NS)
    assert info.value.status == 404


async def test_events_can_be_filtered_by_involved_object_name(
    k8s: FakeKubernetes, core: Any
) -> None:
    pod = k8s.pods(NS, DEP)[0]["metadata"]["name"]
    events = await core.list_namespaced_event(NS, field_selector=f"involvedObject.name={pod}")
    assert {e.reason for e in events.items} >= {"Scheduled", "Pulled", "Created", "Started"}
    assert all(e.involved_object.name == pod for e in events.items)
    with pytest.raises(ApiException) as info:
        await core.list_namespaced_event(NS, field_selector="spec.bogus=x")
    assert _status_of(info.value)["message"] == "field label not supported: spec.bogus"


# ---------------------------------------------------------------------- writes and the controller


async def test_scale_patch_changes_replicas_and_controller_adds_pods(
    k8s: FakeKubernetes, apps: Any
) -> None:
    before = await apps.read_namespaced_deployment(DEP, NS)
    scale = await apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 5}})
    assert scale.spec.replicas == 5
    assert k8s.calls_to("deployments/scale", "patch")[0].content_type == (
        "application/strategic-merge-patch+json"
    )
    after = await apps.read_namespaced_deployment(DEP, NS)
    assert after.metadata.generation == before.metadata.generation + 1
    assert after.metadata.resource_version != before.metadata.resource_version
    assert not k8s.rollout_status(NS, DEP).done
    k8s.tick()
    assert len(k8s.pods(NS, DEP)) == 5
    scale = await apps.read_namespaced_deployment_scale(DEP, NS)
    assert (scale.spec.replicas, scale.status.replicas) == (5, 5)
    assert scale.status.selector == f"app={DEP},team=payments"
    assert k8s.rollout_status(NS, DEP).done
    assert len({rs["metadata"]["name"] for rs in k8s.replicasets(NS, DEP)}) == 2
    with pytest.raises(ApiException) as info:
        await apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": -1}})
    assert info.value.status == 422
    assert _status_of(info.value)["reason"] == "Invalid"


async def test_restart_annotation_patch_triggers_new_replicaset_and_rollout_completes(
    k8s: FakeKubernetes, apps: Any, core: Any
) -> None:
    old_pods = {p["metadata"]["name"] for p in k8s.pods(NS, DEP)}
    await _kubectl_restart(apps, NS, DEP, "2024-05-01T12:00:00Z")
    (call,) = k8s.calls_to("deployments", "patch")
    assert call.content_type == "application/strategic-merge-patch+json"
    status = k8s.rollout_status(NS, DEP)
    assert not status.done
    assert status.message == "Waiting for deployment spec update to be observed..."

    k8s.tick()

    dep = await apps.read_namespaced_deployment(DEP, NS)
    assert dep.spec.template.metadata.annotations[RESTARTED_AT] == "2024-05-01T12:00:00Z"
    assert dep.metadata.annotations[REVISION] == "3"
    rss = sorted(await _owned_replicasets(apps, dep), key=_revision)
    assert [(_revision(rs), rs.spec.replicas) for rs in rss] == [(1, 0), (2, 0), (3, 3)]
    assert rss[-1].spec.template.metadata.annotations[RESTARTED_AT] == "2024-05-01T12:00:00Z"
    pods = await core.list_namespaced_pod(NS, label_selector=f"app={DEP}")
    assert len(pods.items) == 3
    assert not old_pods & {p.metadata.name for p in pods.items}
    assert {p.metadata.labels[HASH_LABEL] for p in pods.items} == {
        rss[-1].metadata.labels[HASH_LABEL]
    }
    assert dep.status.observed_generation == dep.metadata.generation
    assert dep.status.updated_replicas == dep.status.available_replicas == 3
    assert k8s.rollout_status(NS, DEP).message == f'deployment "{DEP}" successfully rolled out'
    scaling = [e["message"] for e in k8s.events(NS, DEP) if e["reason"] == "ScalingReplicaSet"]
    assert f"Scaled up replica set {rss[-1].metadata.name} from 0 to 1" in scaling


async def test_undo_reuses_previous_replicaset_and_bumps_its_revision(
    k8s: FakeKubernetes, api: Any, apps: Any
) -> None:
    before = {rs["metadata"]["name"]: rs for rs in k8s.replicasets(NS, DEP)}
    target = await _kubectl_undo(api, apps, NS, DEP)
    assert target == 1
    assert k8s.calls_to("deployments", "patch")[0].content_type == "application/json-patch+json"

    k8s.tick()

    after = {rs["metadata"]["name"]: rs for rs in k8s.replicasets(NS, DEP)}
    assert after.keys() == before.keys(), "rollback must not create a ReplicaSet"
    reused = next(
        rs
        for rs in after.values()
        if rs["spec"]["template"]["spec"]["containers"][0]["image"] == OLDER
    )
    ann = reused["metadata"]["annotations"]
    assert (ann[REVISION], ann[REVISION_HISTORY]) == ("3", "1")
    assert reused["spec"]["replicas"] == 3
    dep = k8s.deployment(NS, DEP)
    assert dep["metadata"]["annotations"][REVISION] == "3"
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == OLDER
    assert {p["status"]["containerStatuses"][0]["image"] for p in k8s.pods(NS, DEP)} == {OLDER}
    assert k8s.rollout_status(NS, DEP).done
    revisions = sorted(int(rs["metadata"]["annotations"][REVISION]) for rs in after.values())
    assert revisions == [2, 3]


async def test_crashloop_image_never_becomes_ready_and_rollback_fixes_it(
    k8s: FakeKubernetes, api: Any, apps: Any, core: Any, clock: Clock
) -> None:
    k8s.set_image_behaviour(BAD, crashloop=True, crash_message="Caused by: bad config key")
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": BAD}]}}}}
    await apps.patch_namespaced_deployment(DEP, NS, patch)
    for _ in range(4):
        clock.now += 10
        k8s.tick()

    bad_pods = [
        p
        for p in (await core.list_namespaced_pod(NS, label_selector=f"app={DEP}")).items
        if p.spec.containers[0].image == BAD
    ]
    assert len(bad_pods) == 1  # maxSurge 1, maxUnavailable 0: the old pods keep serving
    (cs,) = bad_pods[0].status.container_statuses
    assert not cs.ready and cs.restart_count >= 4
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert cs.last_state.terminated.exit_code == 1
    previous = await core.read_namespaced_pod_log(bad_pods[0].metadata.name, NS, previous=True)
    assert "Caused by: bad config key" in previous
    status = k8s.rollout_status(NS, DEP)
    assert not status.done
    assert status.message.endswith("1 out of 3 new replicas have been updated...")
    dep = await apps.read_namespaced_deployment(DEP, NS)
    assert dep.status.available_replicas == 3 and dep.status.unavailable_replicas == 1
    backoff = [e for e in k8s.events(NS, bad_pods[0].metadata.name) if e["reason"] == "BackOff"]
    assert (
        len(backoff) == 1
        and backoff[0]["count"] == cs.restart_count - 1
        and backoff[0]["type"] == "Warning"
    )

    await _kubectl_undo(api, apps, NS, DEP)
    k8s.tick()
    assert k8s.rollout_status(NS, DEP).done
    images = {p["spec"]["containers"][0]["image"] for p in k8s.pods(NS, DEP)}
    assert images == {GOOD}


async def test_stuck_rollout_exceeds_its_progress_deadline(
    k8s: FakeKubernetes, clock: Clock
) -> None:
    k8s.set_image_behaviour(BAD, crashloop=True)
    k8s.set_image(NS, DEP, BAD)
    k8s.tick()
    clock.now += 601
    k8s.tick()
    status = k8s.rollout_status(NS, DEP)
    assert status.failed
    assert status.message == f'deployment "{DEP}" exceeded its progress deadline'
    cond = next(
        c for c in k8s.deployment(NS, DEP)["status"]["conditions"] if c["type"] == "Progressing"
    )
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")


async def test_image_with_ready_after_becomes_ready_only_after_that_many_ticks(
    k8s: FakeKubernetes,
) -> None:
    slow = "registry.example/ledger:2.1.0"
    k8s.set_image_behaviour(slow, ready_after=2)
    k8s.set_image(NS, "ledger", slow)
    k8s.tick()
    assert not k8s.rollout_status(NS, "ledger").done
    k8s.tick()
    assert not k8s.rollout_status(NS, "ledger").done
    k8s.tick()
    assert k8s.rollout_status(NS, "ledger").done


async def test_paused_deployment_does_not_roll_out_but_still_scales(
    k8s: FakeKubernetes, apps: Any
) -> None:
    await apps.patch_namespaced_deployment(DEP, NS, {"spec": {"paused": True}})
    k8s.set_image(NS, DEP, BAD)
    await apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 4}})
    k8s.tick()
    assert len(k8s.replicasets(NS, DEP)) == 2, "no new ReplicaSet while paused"
    assert {p["spec"]["containers"][0]["image"] for p in k8s.pods(NS, DEP)} == {GOOD}
    assert len(k8s.pods(NS, DEP)) == 4
    cond = next(
        c for c in k8s.deployment(NS, DEP)["status"]["conditions"] if c["type"] == "Progressing"
    )
    assert cond["reason"] == "DeploymentPaused"
    await apps.patch_namespaced_deployment(DEP, NS, {"spec": {"paused": False}})
    k8s.tick()
    assert {p["spec"]["containers"][0]["image"] for p in k8s.pods(NS, DEP)} == {BAD}
    assert k8s.rollout_status(NS, DEP).done


async def test_put_with_stale_resource_version_is_409_conflict(
    k8s: FakeKubernetes, apps: Any
) -> None:
    stale = await apps.read_namespaced_deployment(DEP, NS)
    await apps.patch_namespaced_deployment(DEP, NS, {"metadata": {"labels": {"tier": "backend"}}})
    stale.spec.replicas = 4
    with pytest.raises(ApiException) as info:
        await apps.replace_namespaced_deployment(DEP, NS, stale)
    assert info.value.status == 409
    body = _status_of(info.value)
    assert body["reason"] == "Conflict"
    assert body["message"].startswith(f'Operation cannot be fulfilled on deployments.apps "{DEP}"')
    fresh = await apps.read_namespaced_deployment(DEP, NS)
    fresh.spec.replicas = 4
    replaced = await apps.replace_namespaced_deployment(DEP, NS, fresh)
    assert replaced.spec.replicas == 4
    assert replaced.metadata.labels["tier"] == "backend"
    assert replaced.metadata.generation == fresh.metadata.generation + 1
    k8s.fail("deployments", verb="update", status=409)
    with pytest.raises(ApiException) as info:
        await apps.replace_namespaced_deployment(DEP, NS, replaced)
    assert info.value.status == 409


async def test_merge_patch_and_validation_errors(k8s: FakeKubernetes, apps: Any) -> None:
    dep = await apps.patch_namespaced_deployment(
        DEP,
        NS,
        {"metadata": {"annotations": {"owner": "payments-oncall"}}},
        _content_type="application/merge-patch+json",
    )
    assert dep.metadata.annotations["owner"] == "payments-oncall"
    assert dep.metadata.annotations[REVISION] == "2"
    with pytest.raises(ApiException) as info:
        await apps.patch_namespaced_deployment(
            DEP, NS, {"spec": {"template": {"metadata": {"labels": {"app": "other"}}}}}
        )
    body = _status_of(info.value)
    assert (info.value.status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    with pytest.raises(ApiException) as info:
        await apps.patch_namespaced_deployment(
            DEP, NS, [{"op": "test", "path": "/spec/replicas", "value": 9}]
        )
    assert info.value.status == 422
    assert k8s.deployment(NS, DEP)["spec"]["replicas"] == 3


async def test_dry_run_patch_answers_the_result_without_storing_it(
    k8s: FakeKubernetes, apps: Any
) -> None:
    rv = k8s.deployment(NS, DEP)["metadata"]["resourceVersion"]
    preview = await apps.patch_namespaced_deployment_scale(
        DEP, NS, {"spec": {"replicas": 9}}, dry_run="All"
    )
    assert preview.spec.replicas == 9
    stored = k8s.deployment(NS, DEP)
    assert (stored["spec"]["replicas"], stored["metadata"]["resourceVersion"]) == (3, rv)


async def test_deleted_pod_is_replaced_by_its_replicaset(k8s: FakeKubernetes, core: Any) -> None:
    victim = k8s.pods(NS, DEP)[0]["metadata"]["name"]
    await core.delete_namespaced_pod(victim, NS)
    assert len(k8s.pods(NS, DEP)) == 2
    k8s.tick()
    names = {p["metadata"]["name"] for p in k8s.pods(NS, DEP)}
    assert len(names) == 3 and victim not in names


async def test_watch_streams_initial_objects_then_changes(k8s: FakeKubernetes, apps: Any) -> None:
    seen: list[tuple[str, int]] = []
    w = watch.Watch()

    async def consume() -> None:
        async with w.stream(
            apps.list_namespaced_deployment, NS, label_selector=f"app={DEP}", timeout_seconds=5
        ) as stream:
            async for event in stream:
                seen.append((event["type"], event["object"].spec.replicas))
                if event["type"] == "MODIFIED":
                    w.stop()

    task = asyncio.create_task(consume())
    await k8s.wait_for(lambda: bool(seen))
    await apps.patch_namespaced_deployment_scale(DEP, NS, {"spec": {"replicas": 4}})
    await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", 3), ("MODIFIED", 4)]


async def test_background_tick_rolls_out_without_explicit_ticks() -> None:
    async with FakeKubernetes(tick_interval=0.01) as fake:
        fake.add_deployment("default", "web", "web:1")
        changes: list[str] = []
        fake.on_change.append(lambda kind, obj: changes.append(f"{kind} {obj['kind']}"))
        fake.set_image("default", "web", "web:2")
        await fake.wait_for(lambda: fake.rollout_status("default", "web").done, timeout=3)
        assert "ADDED ReplicaSet" in changes and "DELETED Pod" in changes


# ---------------------------------------------------------------------- wire shapes vs the spec


def _shape_errors(value: Any, schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    """Property names, required fields and JSON types of ``value`` against an OpenAPI schema."""
    if "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    if value is None:
        return []
    errors: list[str] = []
    kind = schema.get("type")
    expected = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
    }.get(kind or "")
    if schema.get("format") == "int-or-string":
        expected = (int, str)
    if expected is not None and not isinstance(value, expected):  # type: ignore[arg-type]
        return [f"{path}: expected {kind}, got {type(value).__name__}"]
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is not None:
            for name in schema.get("required", []):
                if name not in value:
                    errors.append(f"{path}: missing required {name}")
            for name, item in value.items():
                if name not in props:
                    errors.append(f"{path}.{name}: not in the definition")
                else:
                    errors += _shape_errors(item, props[name], defs, f"{path}.{name}")
        elif isinstance(schema.get("additionalProperties"), dict):
            for name, item in value.items():
                errors += _shape_errors(
                    item, schema["additionalProperties"], defs, f"{path}[{name}]"
                )
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += _shape_errors(item, schema["items"], defs, f"{path}[{i}]")
    return errors


async def test_returned_objects_only_use_property_names_from_the_openapi_definitions(
    k8s: FakeKubernetes, clock: Clock
) -> None:
    defs = json.loads(K8S_SPEC.read_text())["definitions"]
    k8s.set_image_behaviour(BAD, crashloop=True)
    k8s.set_image(NS, DEP, BAD)
    k8s.tick(2)
    pod = next(p for p in k8s.pods(NS, DEP) if p["spec"]["containers"][0]["image"] == BAD)
    apps_ns = f"/apis/apps/v1/namespaces/{NS}"
    checks = {
        f"{apps_ns}/deployments/{DEP}": "io.k8s.api.apps.v1.Deployment",
        f"{apps_ns}/deployments/{DEP}/status": "io.k8s.api.apps.v1.Deployment",
        f"{apps_ns}/deployments": "io.k8s.api.apps.v1.DeploymentList",
        f"{apps_ns}/deployments/{DEP}/scale": "io.k8s.api.autoscaling.v1.Scale",
        f"{apps_ns}/replicasets": "io.k8s.api.apps.v1.ReplicaSetList",
        f"/api/v1/namespaces/{NS}/pods": "io.k8s.api.core.v1.PodList",
        f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}": "io.k8s.api.core.v1.Pod",
        f"/api/v1/namespaces/{NS}/events": "io.k8s.api.core.v1.EventList",
        f"{apps_ns}/deployments/ghost": "io.k8s.apimachinery.pkg.apis.meta.v1.Status",
        "/apis/apps/v1": "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
        "/api/v1/": "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    }
    for path, definition in checks.items():
        _, body = await _raw(k8s, path)
        assert isinstance(body, dict), path
        errors = _shape_errors(body, {"$ref": definition}, defs, path)
        assert errors == [], errors
    _, deps = await _raw(k8s, f"{apps_ns}/deployments")
    assert all("kind" not in item for item in deps["items"]), "list items carry no kind"
