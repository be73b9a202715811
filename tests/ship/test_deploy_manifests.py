"""deploy/: the Kubernetes manifests validate offline, and the Role is exactly what the code calls."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBE_CODE = REPO / "bot" / "integrations" / "kubernetes.py"
# The oldest Kubernetes minor we promise to run on, and the newest the validator knows.
VERSIONS = ("1.30.0", "latest")
NOT_RESOURCES = {"kustomization.yaml"}  # kustomize's file, not an API object

# kubernetes-asyncio method prefixes -> RBAC verbs, API objects -> (apiGroup, resource).
VERBS = {
    "read": "get", "list": "list", "watch": "watch", "create": "create", "patch": "patch",
    "replace": "update", "delete": "delete", "delete_collection": "deletecollection",
}  # fmt: skip
APIS = {"core": "", "apps": "apps"}
SUBRESOURCES = ("log", "scale", "status", "exec", "eviction")


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name in NOT_RESOURCES:
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((path.name, doc))
    return found


DOCS = _documents()


def _one(kind: str) -> dict[str, Any]:
    matches = [doc for _, doc in DOCS if doc["kind"] == kind]
    assert len(matches) == 1, f"expected one {kind}, found {len(matches)}"
    return matches[0]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "doc"), DOCS, ids=[f"{name}:{doc['kind']}" for name, doc in DOCS])
def test_every_manifest_validates_against_the_kubernetes_schema(
    name: str, doc: dict[str, Any], version: str
) -> None:
    validator = pytest.importorskip("kubernetes_validate")  # the dev extra installs it
    if version == "latest":
        version = validator.latest_version()
    validator.validate(doc, version, strict=True)


def test_kustomization_lists_every_manifest_but_the_example_secret() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = {p.name for p in DEPLOY.glob("*.yaml")} - NOT_RESOURCES - {"secret.example.yaml"}
    assert set(kustomization["resources"]) == files


# ---------------------------------------------------------------------- the Deployment


def test_deployment_runs_three_probed_replicas_as_the_image_user() -> None:
    deployment = _one("Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert spec["replicas"] == 3
    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert ports["http"] == int(env["PORT"]) == Settings.model_fields["port"].default
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert pod["serviceAccountName"] == _one("ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == _dockerfile_uid()
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    sources = {next(iter(s)): next(iter(s.values()))["name"] for s in container["envFrom"]}
    assert sources == {
        "configMapRef": _one("ConfigMap")["metadata"]["name"],
        "secretRef": _one("Secret")["metadata"]["name"],
    }


def test_the_grace_period_outlasts_the_bot_s_own_drain() -> None:
    pod = _one("Deployment")["spec"]["template"]["spec"]
    config = _one("ConfigMap")["data"]
    grace = float(config["SHUTDOWN_GRACE_SECONDS"])
    assert grace >= float(config["VERIFY_TIMEOUT_SECONDS"])  # a remediation can finish verifying
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pod["terminationGracePeriodSeconds"] > grace + float(pre_stop[-1])


def test_service_and_disruption_budget_select_the_deployment_s_pods() -> None:
    labels = _one("Deployment")["spec"]["template"]["metadata"]["labels"]
    service, pdb = _one("Service"), _one("PodDisruptionBudget")
    assert service["spec"]["selector"].items() <= labels.items()
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 2


def test_config_and_secret_keys_are_settings_the_bot_knows() -> None:
    known = {name.upper() for name in Settings.model_fields} | {"ICBOT_DATA_DIR"}
    for kind in ("ConfigMap", "Secret"):
        doc = _one(kind)
        keys = set(doc.get("data") or {}) | set(doc.get("stringData") or {})
        commented = set(
            re.findall(r"^\s*#\s*([A-Z_]+):", (DEPLOY / "configmap.yaml").read_text(), re.M)
        )
        assert keys <= known, keys - known
        assert commented <= known, commented - known


# ---------------------------------------------------------------------- RBAC vs the code


def _snake_resource(name: str) -> str:
    """`replica_set` -> `replicasets`, `pod` -> `pods`."""
    return name.replace("_", "") + "s"


def kubernetes_calls() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) of every kubernetes-asyncio API call in the adapter.

    Calls look like ``self.core.read_namespaced_pod_log(...)`` or ``self.apps.<method>(...)``;
    the method name says the verb and the resource (kubernetes-asyncio's naming), ``watch=True``
    makes a list a watch. Anything it cannot read fails the test rather than being skipped.
    """
    tree = ast.parse(KUBE_CODE.read_text())
    found: set[tuple[str, str, str]] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        target = node.func.value
        if not (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and target.attr in APIS
        ):
            continue
        method = node.func.attr
        match = re.fullmatch(
            r"(read|list|watch|create|patch|replace|delete_collection|delete)_namespaced_(\w+)",
            method,
        )
        assert match, f"cannot tell the RBAC verb of {target.attr}.{method}"
        verb, rest = VERBS[match.group(1)], match.group(2)
        if any(k.arg == "watch" for k in node.keywords):
            verb = "watch"
        sub = next((s for s in SUBRESOURCES if rest.endswith(f"_{s}")), None)
        resource = _snake_resource(rest.removesuffix(f"_{sub}") if sub else rest)
        found.add((APIS[target.attr], f"{resource}/{sub}" if sub else resource, verb))
    return found


def role_rules() -> set[tuple[str, str, str]]:
    role = _one("Role")
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_code_s_kubernetes_calls_are_read_as_expected() -> None:
    assert kubernetes_calls() == {
        ("", "pods", "list"),
        ("", "pods/log", "get"),
        ("apps", "deployments", "get"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments/scale", "patch"),
        ("apps", "replicasets", "list"),
    }


def test_every_kubernetes_call_the_code_makes_is_allowed_by_the_role() -> None:
    missing = kubernetes_calls() - role_rules()
    assert not missing, f"add to deploy/rbac.yaml: {sorted(missing)}"


def test_the_role_allows_nothing_the_code_does_not_call() -> None:
    extra = role_rules() - kubernetes_calls()
    assert not extra, f"remove from deploy/rbac.yaml (no code calls it): {sorted(extra)}"
    assert not any("*" in rule for rule in role_rules())


def test_only_the_adapter_talks_to_kubernetes() -> None:
    """So reading that one file finds every call the Role must allow."""
    users = {
        path.relative_to(REPO).as_posix()
        for root in ("bot", "commands")
        for path in (REPO / root).rglob("*.py")
        if "kubernetes_asyncio" in path.read_text() and "sandbox" not in path.parts
    }
    assert users == {"bot/integrations/kubernetes.py"}


def test_the_role_binds_the_bot_s_service_account() -> None:
    binding, account = _one("RoleBinding"), _one("ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": _one("Role")["metadata"]["name"],
    }
    assert binding["metadata"]["namespace"] == _one("Role")["metadata"]["namespace"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]


def _dockerfile_uid() -> int:
    from tests.ship.test_dockerfile import final_stage

    user = next(args for cmd, args in final_stage() if cmd == "USER")
    return int(user.split(":")[0])
