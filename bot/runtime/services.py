"""The composition root: everything the bot needs, built from one `Settings`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.logs import get_logger
from bot.core.models import Clock, utcnow
from bot.core.settings import Settings
from bot.delivery.incident_events import IncidentEvents
from bot.delivery.outbox import ChannelPacer, Outbox
from bot.delivery.worker import Worker
from bot.domain import once
from bot.domain.alerts import AlertIntake, resume_positions
from bot.domain.approvals import Approvals, load_approvals
from bot.domain.email_fallback import EmailQueue, SlackWatch
from bot.domain.grafana import Dashboard, GrafanaAnnotations, GrafanaQueue
from bot.domain.incidents import Incidents
from bot.domain.jira import Followups, JiraQueue
from bot.domain.pager import PagerQueue
from bot.domain.pager_events import PagerEvents
from bot.domain.pager_summary import PagerSummary
from bot.domain.policy import load_severity_policy
from bot.domain.ports import Directory, ResolveHook
from bot.domain.prompts import Prompter
from bot.domain.scribe import Scribe
from bot.domain.uow import UnitOfWork
from bot.integrations.actuator import HttpActuator
from bot.integrations.grafana import GrafanaAdapter
from bot.integrations.jira import JiraClient
from bot.integrations.kafka import KafkaLag
from bot.integrations.kafka_io import (
    KafkaAlertSource,
    KafkaDeadLetters,
    KafkaEventSink,
    KafkaProducerClient,
)
from bot.integrations.kubernetes import KubeWriter, default_namespace
from bot.integrations.pagerduty import PagerDutyAdapter
from bot.integrations.slack import SlackChat, SlackMessages
from bot.integrations.slack_directory import SlackDirectory
from bot.integrations.smtp import SmtpMailer
from bot.integrations.statuspage import StatuspageClient
from bot.integrations.vault import VaultSecrets
from bot.pages.links import Linker, linker
from bot.playbooks.catalogue import load_catalogue
from bot.playbooks.checks.probes import Probes
from bot.playbooks.diagnose import Diagnoser
from bot.playbooks.remediations.runner import Remediator
from bot.playbooks.remediations.statuspage import StatusPages
from bot.store import choices as choices_sql
from bot.store import db
from commands.mail import MailRenderer
from commands.rendering import ThreadRenderer
from commands.scribe import chat_message
from commands.services import Services

log = get_logger(__name__)

CHOICES_KEPT = timedelta(days=1)  # a "Which incident?" question nobody answered by then


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    dsn: str,
    token: str,
    clock: Clock = utcnow,
    pacer: ChannelPacer | None = None,
    run_workers: bool = True,
) -> AsyncIterator[Services]:
    """Open the pool, apply migrations, resolve the war room, start the outbox worker."""
    policy = load_severity_policy(settings.playbooks_dir)
    catalogue = load_catalogue(settings.playbooks_dir)  # start-up refuses invalid playbooks
    approval_policy = load_approvals(settings.playbooks_dir)
    # Enough connections open from the start that the first burst does not wait on new ones.
    pool = await db.create_pool(dsn, min_size=5, max_size=10)
    workers: list[asyncio.Task[None]] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    pager = _pager(settings)
    actuator = HttpActuator(settings.service_url_template)
    kube = await _kube(settings)
    lag = KafkaLag(settings.kafka_bootstrap_servers) if settings.kafka_bootstrap_servers else None
    kafka_out = _kafka_producer(settings)
    alert_source: KafkaAlertSource | None = None
    vault = VaultSecrets.from_settings(settings)
    jira = _jira(settings)
    statuspage_api = _statuspage(settings)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn)
        # One HTTP session for every Web API call (slack_sdk opens one per call otherwise).
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        closers.append(http.close)
        client = AsyncWebClient(
            token=token, base_url=settings.slack_api_url, timeout=10, session=http
        )
        chat = SlackChat(client)
        channel_id = await chat.resolve_channel(settings.incident_channel)
        uow = UnitOfWork(pool, clock=clock)
        # The incident-page link maker, made on first use (with no secret set, that writes
        # the laptop's key): shared by the thread's renderer and the /ic handlers.
        links = functools.cache(lambda: linker(settings))
        outbox = Outbox(
            pool,
            chat,
            policy,
            renderer=ThreadRenderer(links, clock=clock),
            clock=clock,
            pacer=pacer,
            lease=timedelta(seconds=settings.outbox_lease_seconds),
        )
        pager_queue = (
            PagerQueue(uow, pager, lease=timedelta(seconds=settings.outbox_lease_seconds))
            if pager is not None
            else None
        )

        incident_events = (
            IncidentEvents(
                pool,
                KafkaEventSink(kafka_out, settings.kafka_events_topic),
                clock=clock,
                lease=timedelta(seconds=settings.outbox_lease_seconds),
            )
            if kafka_out is not None and settings.kafka_events_topic
            else None
        )

        directory = SlackDirectory(client)  # users.info, cached: names and emails
        email_queue = _email_queue(settings, uow, outbox, directory, links)

        # Issue 21, Grafana annotations and the PagerDuty summary note: queued by every resolve.
        grafana = _grafana(settings)
        if grafana is not None:
            closers.append(grafana.close)
        grafana_queue = (
            GrafanaQueue(uow, grafana, lease=timedelta(seconds=settings.outbox_lease_seconds))
            if grafana is not None
            else None
        )

        def page_link(incident_id: int) -> str | None:
            return links().url(incident_id, now=clock())

        def severity_name(severity: str) -> str:
            return policy.level(severity).name

        on_resolve: list[ResolveHook] = [
            GrafanaAnnotations(
                enabled=grafana is not None,
                dashboards={
                    name: [Dashboard(g.dashboard_uid, g.panel_id) for g in playbook.grafana]
                    for name, playbook in catalogue.playbooks.items()
                },
                severity_name=severity_name,
                link=page_link,
            )
        ]
        if pager is not None:
            on_resolve.append(PagerSummary(severity_name=severity_name, link=page_link))

        incidents = Incidents(
            uow, policy, channel_id=channel_id, pagerduty=pager is not None, on_resolve=on_resolve
        )

        # Jira follow-ups (issue 21): action items filed as issues when JIRA_* is set.
        jira_queue = (
            JiraQueue(
                uow,
                jira,
                directory,
                page_link=lambda incident_id: links().url(incident_id, now=clock()),
                lease=timedelta(seconds=settings.outbox_lease_seconds),
            )
            if jira is not None
            else None
        )
        # The queues that deliver what a committed change leaves behind: each is kicked after
        # every commit (delivered now rather than at the next poll) and runs as a worker.
        queues: list[Worker] = [
            q
            for q in (outbox, pager_queue, incident_events, email_queue, grafana_queue, jira_queue)
            if q is not None
        ]
        for queue in queues:
            uow.after_commit(queue.kick)
        followups = Followups(uow, incidents, jira=jira is not None)

        async def flag_token() -> str | None:
            """FEATURE_FLAG_TOKEN, else `feature_flag_token` at VAULT_SECRETS_PATH."""
            if settings.feature_flag_token is not None:
                return settings.feature_flag_token.get_secret_value()
            if vault is None:
                return None
            secret = await vault.read(settings.vault_secrets_path, "feature_flag_token")
            return secret.get_secret_value()

        remediator = Remediator(
            kube,
            actuator=actuator,
            flag_token=flag_token,
            secrets=vault,
            lag=lag,
            clock=clock,
            verify_timeout=settings.verify_timeout_seconds,
            namespace=default_namespace(settings.kube_namespace, settings.kubeconfig),
            statuspage=(
                StatusPages(statuspage_api, uow, catalogue, channel_id=channel_id)
                if statuspage_api is not None
                else None
            ),
        )

        async def group_members(group: str) -> set[str]:
            response = await client.usergroups_users_list(usergroup=group)
            return {str(u) for u in response.get("users") or []}

        async def oncall_members() -> set[str]:
            """Slack users on call now in PagerDuty (matched by email); none without PagerDuty."""
            if pager is None:
                return set()
            found = set()
            for person in await pager.oncalls():
                if person.level != 1 or not person.email:  # the primary on-call
                    continue
                try:
                    response = await client.users_lookupByEmail(email=person.email)
                except SlackApiError:
                    continue  # not in this workspace
                found.add(str(response["user"]["id"]))
            return found

        approvals = Approvals(
            uow,
            incidents,
            approval_policy,
            remediator,
            members=group_members,
            oncall=oncall_members,
        )

        async def forget_old_requests() -> int:
            await once.prune(pool, now=clock())
            async with pool.acquire() as conn:  # "Which incident?" questions nobody answered
                await choices_sql.prune(conn, before=clock() - CHOICES_KEPT)
            return 0  # a chore: nothing the timer loop must hurry back for

        prompter = Prompter(
            uow,
            policy,
            poll_interval=settings.timer_poll_seconds,
            pagerduty=pager is not None,
            sweepers=[
                approvals.expire_due,
                approvals.fail_interrupted,
                forget_old_requests,
            ],
        )
        probes = Probes(actuator=actuator, kube=kube, lag=lag)
        alert_intake = None
        if kafka_out is not None and settings.kafka_alert_topic_list:
            assert settings.kafka_bootstrap_servers is not None
            alert_source = KafkaAlertSource(
                settings.kafka_bootstrap_servers,
                topics=settings.kafka_alert_topic_list,
                group_id=settings.kafka_group_id,
                resume=resume_positions(pool, settings.kafka_group_id),
                offset_reset=settings.kafka_alert_offset_reset,
                clamp_negative_lag=settings.kafka_clamp_negative_lag,
            )
            alert_intake = AlertIntake(
                uow,
                incidents,
                policy,
                source=alert_source,
                dead_letters=KafkaDeadLetters(kafka_out, settings.kafka_dead_letter_topic),
                group_id=settings.kafka_group_id,
                window=timedelta(seconds=settings.kafka_alert_window_seconds),
                batch=settings.kafka_alert_batch,
            )
        services = Services(
            settings=settings,
            pool=pool,
            uow=uow,
            policy=policy,
            client=client,
            chat=chat,
            channel_id=channel_id,
            incidents=incidents,
            outbox=outbox,
            prompter=prompter,
            pager=pager,
            pager_queue=pager_queue,
            pager_events=(
                PagerEvents(
                    uow,
                    incidents,
                    service_id=settings.pagerduty_service_id or "",
                    own_user_id=pager.own_user_id,
                )
                if pager is not None
                else None
            ),
            catalogue=catalogue,
            probes=probes,
            diagnoser=Diagnoser(catalogue, probes, incidents, uow=uow),
            remediator=remediator,
            approvals=approvals,
            clock=clock,
            links=links,
            scribe=Scribe(
                uow, incidents, SlackMessages(client, parse=chat_message), jira=jira is not None
            ),
            alert_intake=alert_intake,
            incident_events=incident_events,
            email_queue=email_queue,
            followups=followups,
            jira_queue=jira_queue,
            grafana_queue=grafana_queue,
            directory=directory,
        )
        if run_workers:
            running = [*queues, prompter, *([alert_intake] if alert_intake is not None else [])]
            for worker in running:
                workers.append(asyncio.create_task(worker.run_forever(), name=worker.name))
        yield services
    finally:
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()
        for close in closers:
            await close()
        if pager is not None:
            pager.close()
        await actuator.close()
        if kube is not None:
            await kube.close()
        if lag is not None:
            await lag.close()
        if alert_source is not None:
            await alert_source.close()
        if kafka_out is not None:
            await kafka_out.close()
        if vault is not None:
            await vault.close()
        if jira is not None:
            await jira.close()
        if statuspage_api is not None:
            await statuspage_api.close()


async def _kube(settings: Settings) -> KubeWriter | None:
    """From KUBECONFIG, or in-cluster when running in a pod; otherwise Kubernetes is off."""
    if settings.kubeconfig is not None:
        return await KubeWriter.connect(settings.kubeconfig)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return await KubeWriter.connect(None)
    return None


def _kafka_producer(settings: Settings) -> KafkaProducerClient | None:
    """The producer for dead letters and incident events, if either is configured."""
    if not settings.kafka_bootstrap_servers:
        return None
    if not (settings.kafka_alert_topic_list or settings.kafka_events_topic):
        return None
    return KafkaProducerClient(
        settings.kafka_bootstrap_servers, idempotent=settings.kafka_idempotent_producer
    )


def _pager(settings: Settings) -> PagerDutyAdapter | None:
    if not settings.pagerduty_enabled:
        return None
    assert settings.pagerduty_api_token is not None
    return PagerDutyAdapter(
        api_key=settings.pagerduty_api_token.get_secret_value(),
        from_email=settings.pagerduty_from_email or "",
        service_id=settings.pagerduty_service_id or "",
        base_url=settings.pagerduty_api_url,
        ca_bundle=str(settings.pagerduty_ca_bundle) if settings.pagerduty_ca_bundle else None,
    )


def _email_queue(
    settings: Settings,
    uow: UnitOfWork,
    outbox: Outbox,
    directory: Directory,
    links: Callable[[], Linker],
) -> EmailQueue | None:
    """Email when Slack is down: SMTP_URL set, else off (and the outbox watches nothing)."""
    mailer = SmtpMailer.from_settings(settings)
    if mailer is None:
        log.info("email.off", reason="Email is not configured (SMTP_URL)")
        return None
    watch = SlackWatch(uow, down_after=timedelta(seconds=settings.slack_down_after))
    outbox.watchers.append(watch)
    return EmailQueue(
        uow,
        mailer,
        watch=watch,
        directory=directory,
        renderer=MailRenderer(),
        fallback=settings.fallback_email_list,
        link=lambda incident_id, now: links().url(incident_id, now=now),
        lease=timedelta(seconds=settings.outbox_lease_seconds),
    )


def _jira(settings: Settings) -> JiraClient | None:
    """Jira follow-ups: off unless JIRA_URL, JIRA_EMAIL, JIRA_API_TOKEN and JIRA_PROJECT are set."""
    if not settings.jira_enabled:
        return None
    assert settings.jira_url and settings.jira_email and settings.jira_api_token
    return JiraClient(
        base_url=settings.jira_url,
        email=settings.jira_email,
        api_token=settings.jira_api_token.get_secret_value(),
        project=settings.jira_project or "",
        issue_type=settings.jira_issue_type,
    )


def _grafana(settings: Settings) -> GrafanaAdapter | None:
    """GRAFANA_URL and GRAFANA_TOKEN (a service account token); unset: Grafana is off."""
    if not settings.grafana_enabled:
        return None
    assert settings.grafana_url is not None and settings.grafana_token is not None
    return GrafanaAdapter(settings.grafana_url, settings.grafana_token.get_secret_value())


def _statuspage(settings: Settings) -> StatuspageClient | None:
    """The Statuspage adapter when STATUSPAGE_API_KEY and STATUSPAGE_PAGE_ID are set."""
    if not settings.statuspage_enabled:
        return None
    assert settings.statuspage_api_key is not None and settings.statuspage_page_id is not None
    return StatuspageClient(
        api_key=settings.statuspage_api_key.get_secret_value(),
        page_id=settings.statuspage_page_id.strip(),
        base_url=settings.statuspage_api_url,
    )
