"""Capabilities the bot asks of the outside world, each once: `Chat` (Slack in production and in
the shell), the checks' read-only probes (`Actuator`, `Kube`, `Lag`) and what remediations
change (`KubeOps`, `ActuatorOps`, `SecretOps`, which extend the probes' reads). Adapters in
`bot/integrations/` implement them; each adapter module ends with a typing-only function that
makes mypy prove it conforms.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.core.models import Member


@dataclass(frozen=True)
class SharedFile:
    """A file the bot shared: its id, name, title and where people open it."""

    id: str
    name: str
    title: str
    permalink: str


class Chat(Protocol):
    async def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Post a message; returns its ts. Raises IntegrationError."""
        ...

    async def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
    ) -> None: ...

    async def delete(self, *, channel: str, ts: str) -> None:
        """Delete a message the bot posted (gone already is fine). Raises IntegrationError."""
        ...

    async def find_posted(
        self, *, channel: str, thread_ts: str | None, event_type: str, key: str
    ) -> str | None:
        """The ts of a message the bot already posted with this metadata key, if any."""
        ...

    async def resolve_channel(self, name_or_id: str) -> str: ...

    async def share_file(
        self,
        *,
        channel: str,
        thread_ts: str | None,
        filename: str,
        title: str,
        content: str | bytes,
        comment: str,
    ) -> SharedFile:
        """Upload `content` (text as UTF-8, bytes as they are) as a file and share it in
        `channel` (in `thread_ts`'s thread), `comment` being the message that carries it.
        Raises IntegrationError."""
        ...

    async def delete_file(self, file_id: str) -> None:
        """Delete a file the bot shared (gone already is fine). Raises IntegrationError."""
        ...


class Directory(Protocol):
    """Who a Slack user id is (`users.info`, cached): names for text Slack will not render (a
    file, the terminal), emails for a Jira assignee and the email fallback."""

    async def names(self, user_ids: Collection[str]) -> dict[str, str]:
        """The display name of each of `user_ids` the workspace knows (others are left out).
        Raises IntegrationError."""
        ...

    async def member(self, user_id: str) -> Member:
        """The member's email and name (both None for an id the workspace does not know).
        Raises IntegrationError."""
        ...


# -- probes (checks) and remediations --------------------------------------------------------


@dataclass(frozen=True)
class PodInfo:
    name: str
    ready: bool
    restarts: int
    phase: str
    reason: str | None  # e.g. CrashLoopBackOff


@dataclass(frozen=True)
class DeploymentInfo:
    name: str
    desired: int
    ready: int
    updated: int
    available: int
    revision: str | None
    image: str | None
    paused: bool = False  # `kubectl rollout pause`: no rollout happens until resumed


@dataclass(frozen=True)
class Revision:
    """One revision of a Deployment (its ReplicaSet), as `kubectl rollout undo` finds them."""

    number: int
    image: str
    created: datetime | None
    replicaset: str
    template: dict[str, Any]
    annotations: dict[str, str]


class Actuator(Protocol):
    async def metric(self, service: str, name: str, tags: dict[str, str]) -> dict[str, Any]: ...

    async def health(self, service: str, component: str | None) -> dict[str, Any]: ...

    async def circuit_breakers(self, service: str) -> dict[str, Any]: ...


class Kube(Protocol):
    async def pods(self, namespace: str, selector: str) -> list[PodInfo]: ...

    async def deployment(self, namespace: str, name: str) -> DeploymentInfo: ...

    async def logs(self, namespace: str, pod: str, *, tail_lines: int) -> str: ...


class Lag(Protocol):
    async def consumer_lag(
        self, group: str, topics: list[str] | None
    ) -> dict[tuple[str, int], int | None]: ...

    async def end_offsets(self, topic: str) -> dict[int, int]: ...


class KubeOps(Kube, Protocol):
    """What remediations do to Deployments (reads: `Kube`)."""

    async def history(self, namespace: str, name: str) -> list[Revision]: ...

    async def rollback(self, namespace: str, name: str, revision: Revision) -> None: ...

    async def restart(self, namespace: str, name: str, *, at: str) -> None: ...

    async def scale(self, namespace: str, name: str, replicas: int) -> None: ...

    async def rollout_status(self, namespace: str, name: str) -> tuple[bool, str]: ...


class ActuatorOps(Actuator, Protocol):
    """What remediations change through actuator endpoints (reads: `Actuator`)."""

    async def transition_breaker(
        self, service: str, name: str, update_state: str
    ) -> dict[str, Any]: ...

    async def flag(self, service: str, name: str, *, token: str) -> dict[str, Any]: ...

    async def set_flag(
        self, service: str, name: str, value: Any, *, token: str, expected_version: int | None,
        actor: str, reason: str,
    ) -> dict[str, Any]: ...  # fmt: skip


TokenSource = Callable[[], Awaitable[str | None]]


class SecretOps(Protocol):
    async def versions(self, path: str) -> list[int]: ...

    async def rotate(self, path: str, key: str, *, new_value: str | None = None) -> Any: ...

    async def read(self, path: str, key: str, *, version: int | None = None) -> Any: ...
