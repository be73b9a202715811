"""Capabilities the bot asks of the outside world, each once, with the data they carry:

- Slack: `Chat` and `Directory` (in production and in the shell), `MessageSource` (reading
  messages for the scribe); what the outbox posts and who hears how it went (`Renderer`,
  `Rendered`, `Watcher`);
- `Pager` (PagerDuty);
- Kafka: the alert intake (`AlertSource`, `DeadLetters`) and the incident events (`EventSink`);
- what a resolve or an action item queues: `ResolveHook`, `Annotator` (Grafana), `Tracker`
  (Jira), `Mailer` and `MailRenderer` (the email fallback);
- the checks' read-only probes (`Actuator`, `Kube`, `Lag`) and what remediations change
  (`KubeOps`, `ActuatorOps`, `SecretOps`, which extend the probes' reads, and `StatuspageApi`).

Adapters in `bot/integrations/` implement them; each adapter module ends with a typing-only
function that makes mypy prove it conforms.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from bot.core.errors import IntegrationError
from bot.core.models import Incident, Member, OnCall, PagerIncident, TimelineEntry

if TYPE_CHECKING:
    from bot.domain.policy import SeverityPolicy
    from bot.domain.uow import Tx
    from bot.store.actions import PendingAction


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


# -- reading Slack messages (the scribe) -----------------------------------------------------


@dataclass(frozen=True)
class ChatMessage:
    """A Slack message as the scribe needs it."""

    channel: str
    ts: str
    user: str | None
    text: str
    thread_ts: str | None = None  # the thread's root ts for a reply; None (or ts) for a root
    is_bot: bool = False
    files: int = 0

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts


class MessageSource(Protocol):
    """Reading Slack messages (the Web API in production, the stand-in in tests)."""

    async def permalink(self, channel: str, ts: str) -> str:
        """The message's permalink. Raises IntegrationError."""
        ...

    async def message(self, channel: str, ts: str) -> ChatMessage | None:
        """The message as it is now; None if it does not exist. Raises IntegrationError."""
        ...


# -- paging (PagerDuty) ----------------------------------------------------------------------


class Pager(Protocol):
    async def create_incident(
        self, *, title: str, urgency: str, incident_key: str, details: str
    ) -> PagerIncident: ...

    async def update_incident(
        self,
        pd_id: str,
        *,
        status: str | None = None,
        urgency: str | None = None,
        priority: str | None = None,
        resolution: str | None = None,
    ) -> None: ...

    async def add_note(self, pd_id: str, text: str) -> None: ...

    async def notes(self, pd_id: str) -> list[str]: ...

    async def add_responders(
        self, pd_id: str, *, targets: list[tuple[str, str]], message: str
    ) -> None: ...

    async def oncalls(self) -> list[OnCall]: ...

    async def own_user_id(self) -> str | None: ...


# -- the alert intake and the incident events (Kafka) ----------------------------------------


TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class RawRecord:
    """One Kafka record, as the intake sees it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int  # the record's timestamp (-1 if it has none)
    key: bytes | None
    value: bytes | None

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


class AlertSource(Protocol):
    """The consumer (`bot.integrations.kafka_io.KafkaAlertSource`)."""

    async def fetch(self, *, max_records: int, timeout: float) -> list[RawRecord]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    async def rewind(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def lag(self) -> dict[TopicPartition, int]: ...


class DeadLetters(Protocol):
    async def dead_letter(self, record: RawRecord, reason: str) -> None: ...


class EventSink(Protocol):
    """Where timeline entries are published (`bot.integrations.kafka_io.KafkaEventSink`)."""

    async def publish(self, key: bytes, values: Sequence[bytes]) -> int:
        """Append a prefix of `values` as one batch under `key`; returns how many, once acked.

        Raises `IntegrationError` if the broker did not acknowledge it.
        """
        ...


# -- what a resolve or an action item queues: Grafana, Jira, email ---------------------------


class ResolveHook(Protocol):
    """Work a resolve queues in its own transaction (a Grafana annotation, a PagerDuty summary):
    `incident` as resolved; `resolution` counts this incident's resolves (2 after a reopen).
    Returns fields for the resolve's timeline entry (worded by `bot/core/wording.py`), if there
    is something to say."""

    async def on_resolve(
        self, tx: Tx, incident: Incident, *, resolution: int
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Found:
    """An annotation Grafana already holds."""

    id: int
    dashboard_uid: str | None
    panel_id: int


class Annotator(Protocol):
    async def find(
        self, *, tags: Sequence[str], dashboard_uid: str | None, panel_id: int | None
    ) -> list[Found]: ...

    async def create(self, body: Mapping[str, Any]) -> int: ...

    async def patch(self, annotation_id: int, body: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class JiraIssue:
    key: str  # PAY-123
    url: str  # https://<site>/browse/PAY-123


@dataclass(frozen=True)
class FollowUp:
    """What an issue says, as plain data; the adapter writes it as Atlassian Document Format."""

    summary: str
    text: str
    incident: str  # "INC-4: Checkout failing"
    page_url: str | None  # the incident page, when the bot serves one
    owner: str | None  # how the owner is named (their email, else their Slack id)
    labels: list[str]


class Tracker(Protocol):
    """Jira, as the follow-ups need it (`bot.integrations.jira.JiraClient`)."""

    async def create_issue(self, follow_up: FollowUp, *, assignee: str | None) -> JiraIssue: ...

    async def find_issue(self, *, label: str) -> JiraIssue | None: ...

    async def find_user(self, email: str) -> str | None:
        """The accountId of the Jira user with that email, if Jira knows one."""
        ...

    async def resolve_issue(self, key: str) -> bool:
        """Move the issue to a Done status; False if it was done already."""
        ...


@dataclass(frozen=True)
class Mail:
    subject: str
    body: str  # plain text


class Mailer(Protocol):
    async def send(
        self, *, to: Sequence[str], subject: str, body: str, key: str, thread: str
    ) -> str:
        """Send one plain-text email; its Message-ID is made from `key` (stable across
        retries) and it joins the conversation `thread`. Returns the Message-ID. Raises
        IntegrationError (``permanent`` when the server refused it for good)."""
        ...


class MailRenderer(Protocol):
    """What the emails say is worded elsewhere (`commands.mail`)."""

    def entry_mail(
        self, incident: Incident, entry: TimelineEntry, *, names: dict[str, str], link: str | None
    ) -> Mail: ...


# -- the Slack outbox: what it posts is worded elsewhere; who hears how a post went ----------


class Rendered(Protocol):
    """A message ready to post: its fallback text and its Block Kit."""

    @property
    def text(self) -> str: ...

    @property
    def blocks(self) -> list[dict[str, Any]]: ...


class Renderer(Protocol):
    """What the outbox posts is worded elsewhere (`commands.blocks`); it only delivers."""

    def incident_card(
        self, incident: Incident, policy: SeverityPolicy, *, now: datetime
    ) -> Rendered: ...

    def timeline_reply(self, entry: TimelineEntry) -> Rendered: ...

    def approval_card(self, entry: TimelineEntry, pending: PendingAction) -> Rendered: ...

    def thread_digest(self, entries: Sequence[TimelineEntry]) -> Rendered: ...


class Watcher(Protocol):
    """Hears how each Slack post went (the email fallback's `SlackWatch`)."""

    async def failed(self, exc: IntegrationError) -> None: ...

    async def succeeded(self) -> None: ...


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


class StatuspageApi(Protocol):
    """What the Statuspage adapter (`bot.integrations.statuspage`) offers."""

    page_id: str

    async def create_incident(self, fields: dict[str, Any]) -> dict[str, Any]: ...

    async def update_incident(self, incident_id: str, fields: dict[str, Any]) -> dict[str, Any]: ...

    async def incident(self, incident_id: str) -> dict[str, Any]: ...

    async def list_incidents(
        self, *, q: str | None = None, limit: int = 100, page: int = 1
    ) -> list[dict[str, Any]]: ...

    async def components(self) -> list[dict[str, Any]]: ...
