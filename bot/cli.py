"""The `icbot` console script (also `python -m bot`). Settings are built here, once."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core
from pydantic import ValidationError

from bot.core import logs
from bot.core.errors import ConfigError, IntegrationError, NotFound
from bot.core.numfmt import plural
from bot.core.settings import Settings

if TYPE_CHECKING:
    import asyncpg
    from typer.models import CommandFunctionType

    from bot.domain.incidents import Incidents
from bot.domain.timeline import Verification

HELP = """`icbot` alone opens the shell: the bot in your terminal (try `icbot shell --sandbox`).

Incident response for #waqiti-incidents: the commands below run it in Slack, migrate its
database, and print or check what it recorded."""
PLAIN_HELP: dict[str, Any] = {
    "rich_markup_mode": None,  # plain help: no boxes, no `<bool>` type tags
    "context_settings": {"help_option_names": ["-h", "--help"]},
}


class _Command(typer.core.TyperCommand):
    """Usage lines say `INC-n`, as the help does, not typer's `{INC-n}`."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:  # typer vendors click: its Context
        return [re.sub(r"^\{(.*)\}$", r"\1", piece) for piece in super().collect_usage_pieces(ctx)]


class _Typer(typer.Typer):
    def command(self, *args: Any, **kwargs: Any) -> Callable[[CommandFunctionType], Any]:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


cli = _Typer(help=HELP, no_args_is_help=False, pretty_exceptions_enable=False, **PLAIN_HELP)
audit_cli = _Typer(
    help="Check the tamper-evident timeline; export an incident's evidence.",
    no_args_is_help=True,
    **PLAIN_HELP,
)
cli.add_typer(audit_cli, name="audit")
playbooks_cli = _Typer(help="Playbooks and policy files.", no_args_is_help=True, **PLAIN_HELP)
cli.add_typer(playbooks_cli, name="playbooks")


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        typer.echo(f"icbot: invalid settings: {problems}", err=True)
        raise typer.Exit(2) from None


def sandbox_data_dir(settings: Settings) -> Path:
    """`$XDG_DATA_HOME/icbot/sandbox`: the sandbox's embedded database and stand-in state."""
    return settings.data_dir / "sandbox"


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"icbot: {message}", err=True)
    return typer.Exit(code)


def _dsn(settings: Settings) -> str | None:
    return settings.database_url.get_secret_value() if settings.database_url else None


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"icbot {package_version('icbot')}")
        raise typer.Exit()


@cli.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """With no command, runs the shell."""
    if ctx.invoked_subcommand is None:
        shell()


@cli.command()
def shell(
    sandbox: Annotated[
        bool,
        typer.Option(
            "--sandbox",
            help="Also start a simulated Waqiti platform on 127.0.0.1 (Kubernetes, actuator,"
            " PagerDuty, Kafka) with a scenario loaded.",
        ),
    ] = False,
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            help="Sandbox scenario: bad-deploy (default), saga-storm, alert-delivery, audit-gap,"
            " healthy. Implies --sandbox.",
        ),
    ] = None,
) -> None:
    """The bot in your terminal: type /ic commands, see what it posts."""
    settings = _settings()
    logs.configure(settings.log_format or "console", "WARNING")
    if sandbox or scenario:
        try:
            from sandbox.scenario import DEFAULT_SCENARIO, load_scenario
        except ModuleNotFoundError as exc:
            raise _fail(str(_sandbox_missing(exc))) from None

        scenario = scenario or DEFAULT_SCENARIO
        try:
            load_scenario(scenario)
        except ConfigError as exc:
            raise _fail(str(exc)) from None
        # The sandbox's incidents (and fake PagerDuty links) stay out of the plain shell's database.
        settings = settings.model_copy(update={"data_dir": sandbox_data_dir(settings)})
    try:
        code = asyncio.run(_run_shell(settings, scenario))
    except (ConfigError, NotFound) as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


async def _run_shell(settings: Settings, scenario: str | None = None) -> int:
    try:
        from bot.runtime.shell import run_shell
    except ModuleNotFoundError as exc:
        raise _sandbox_missing(exc) from None

    return await run_shell(settings, scenario=scenario)


def _sandbox_missing(exc: ModuleNotFoundError) -> ConfigError:
    """The shell's Slack (and --sandbox's platform) are the `sandbox` package, not the product."""
    if (exc.name or "").split(".")[0] != "sandbox":
        raise exc
    return ConfigError(
        "the shell needs the sandbox package, which this install does not have (the Docker image"
        " ships without it): from a source checkout, pip install -e '.[sandbox]'"
    )


@cli.command()
def serve(
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker", help="Serve Slack only; run the background loops with `icbot worker`."
        ),
    ] = False,
) -> None:
    """Production HTTP mode on PORT: /slack/events, /healthz, /readyz, /metrics."""
    from functools import partial

    from bot.runtime.serve import serve_http

    _run_service(partial(serve_http, run_workers=not no_worker))


@cli.command()
def worker() -> None:
    """Only the background loops (outbox, prompts, PagerDuty, events, alert intake); no HTTP."""
    from bot.runtime.worker import run_worker

    _run_service(run_worker)


@cli.command()
def socket() -> None:
    """Socket Mode (SLACK_APP_TOKEN): the app over a WebSocket; /healthz, /readyz, /metrics."""
    from bot.runtime.socket import serve_socket_mode

    _run_service(serve_socket_mode)


def _run_service(run: Callable[..., Coroutine[Any, Any, None]]) -> None:
    """Secrets (from Vault too), database, the app; on SIGTERM drain, then exit 0."""
    settings = _settings()
    logs.configure(settings.log_format or "json", settings.log_level)
    try:
        asyncio.run(
            run(
                settings,
                grace=settings.shutdown_grace_seconds,
                secrets_interval=settings.secrets_refresh_seconds,
            )
        )
    except (ValueError, ConfigError) as exc:
        raise _fail(str(exc)) from None
    except IntegrationError as exc:  # Slack (or Vault...) unreachable at start-up
        raise _fail(f"cannot start: {_with_cause(exc)}", 1) from None


def _with_cause(exc: BaseException) -> str:
    """`slack: conversations.list: ClientConnectorError (Cannot connect to host ...)`."""
    cause = exc.__cause__
    detail = str(cause).strip() if cause is not None else ""
    return f"{exc} ({detail})" if detail and detail not in str(exc) else str(exc)


@cli.command()
def migrate() -> None:
    """Apply database migrations and exit."""
    settings = _settings()
    logs.configure(settings.log_format or "console", settings.log_level)
    applied = asyncio.run(_migrate(settings))
    names = f": {', '.join(applied)}" if applied else ""
    typer.echo(f"applied {plural(len(applied), 'migration')}{names}")


@cli.command()
def reset(
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Reset the sandbox's data (`shell --sandbox`).")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Start afresh: delete the embedded database (every incident in it), after confirmation."""
    settings = _settings()
    if settings.database_url and not sandbox:
        raise _fail(
            "DATABASE_URL is set: reset only deletes the embedded database; drop or empty"
            " that database with your own tools"
        )
    target = sandbox_data_dir(settings) if sandbox else settings.data_dir / "pgdata"
    if not target.exists():
        typer.echo(f"nothing to reset: {target} does not exist")
        return
    if _postgres_running(target / "postmaster.pid") or _postgres_running(
        target / "pgdata" / "postmaster.pid"
    ):
        raise _fail(f"{target} is in use: leave every icbot using it (shell, serve), then retry")
    what = "the sandbox's data" if sandbox else "the embedded database and every incident in it"
    if not yes and not typer.confirm(f"Delete {what} ({target})?", default=False):
        typer.echo("nothing deleted")
        raise typer.Exit(1)
    shutil.rmtree(target)
    typer.echo(f"deleted {target}; the next run starts afresh")


def _postgres_running(pid_file: Path) -> bool:
    """A server is running on that pgdata (its postmaster.pid names a live process)."""
    try:
        pid = int(pid_file.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return Path(f"/proc/{pid}").exists()


@asynccontextmanager
async def _one_connection_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on the configured (or embedded) database, for one-shot commands."""
    from bot.store import db

    async with db.database(_dsn(settings), settings.data_dir) as dsn:
        pool = await db.create_pool(dsn, min_size=1, max_size=1)
        try:
            yield pool
        finally:
            await pool.close()


def _incident_number(incident: str) -> int:
    """`INC-3` or `3`, or exit 2 with a clear message."""
    from commands.parsing import INCIDENT

    match = INCIDENT.match(incident.strip()) or INCIDENT.match(f"INC-{incident.strip()}")
    if match is None:
        raise _fail(f"{incident!r} is not an incident reference such as INC-3")
    return int(match.group(1))


def _incidents(pool: asyncpg.Pool, settings: Settings) -> Incidents:
    from bot.domain.incidents import Incidents
    from bot.domain.policy import load_severity_policy
    from bot.domain.uow import UnitOfWork

    return Incidents(UnitOfWork(pool), load_severity_policy(settings.playbooks_dir), channel_id="")


async def _migrate(settings: Settings) -> list[str]:
    from bot.store import db

    async with _one_connection_pool(settings) as pool, pool.acquire() as conn:
        return await db.migrate(conn)


@audit_cli.command("verify")
def audit_verify(
    incident: Annotated[str | None, typer.Argument(help="INC-n (or n)", metavar="INC-n")] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle", help="Check an exported bundle (folder or ZIP) offline, no database."
        ),
    ] = None,
) -> None:
    """Re-hash an incident's timeline chain (or a bundle's); exit 1 if anything was altered."""
    if bundle is not None:
        if incident is not None:
            raise _fail("give INC-n or --bundle DIR, not both")
        _verify_bundle(bundle)
        return
    if incident is None:
        raise _fail("name an incident (icbot audit verify INC-3) or a bundle (--bundle DIR)")
    number = _incident_number(incident)
    settings = _settings()
    logs.configure(settings.log_format or "console", "WARNING")
    try:
        result = asyncio.run(_verify(settings, number))
    except NotFound as exc:
        raise _fail(str(exc)) from None
    ref = f"INC-{number}"
    if result.ok:
        typer.echo(f"{ref}: timeline intact ({result.checked} entries verified)")
        return
    typer.echo(f"{ref}: timeline ALTERED ({plural(len(result.problems), 'problem')}):")
    for problem in result.problems:
        typer.echo(f"  - {problem}")
    raise typer.Exit(1)


def _verify_bundle(path: Path) -> None:
    from bot.pages.bundle import read_bundle, verify_bundle

    try:
        files = read_bundle(path)
    except (NotFound, OSError) as exc:
        raise _fail(str(exc)) from None
    check = verify_bundle(files)
    if check.ok:
        typer.echo(
            f"{path}: bundle intact ({len(files)} files, {check.checked} timeline entries,"
            f" {plural(check.changes, 'change record')}; chain head {check.head})"
        )
        return
    typer.echo(f"{path}: bundle ALTERED ({plural(len(check.problems), 'problem')}):")
    for problem in check.problems:
        typer.echo(f"  - {problem}")
    raise typer.Exit(1)


@audit_cli.command("export")
def audit_export(
    incident: Annotated[str, typer.Argument(help="INC-n (or n)")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder to write into (default: ./INC-n).")
    ] = None,
) -> None:
    """Write the incident's evidence bundle: timeline with hashes, change records, SHA256SUMS."""
    number = _incident_number(incident)
    settings = _settings()
    logs.configure(settings.log_format or "console", "WARNING")
    folder = out or Path(f"INC-{number}")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise _fail(f"{folder} exists and is not an empty folder; name another with --out")
    try:
        written = asyncio.run(_export(settings, number, folder))
    except NotFound as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write the bundle: {exc}") from None
    for path in written:
        typer.echo(str(path))


async def _export(settings: Settings, number: int, folder: Path) -> list[Path]:
    from bot.core.models import utcnow
    from bot.pages import bundle

    async with _one_connection_pool(settings) as pool:
        snapshot, requests = await bundle.load(pool, number)
    return bundle.build(snapshot, requests, exported_at=utcnow()).write(folder)


async def _verify(settings: Settings, number: int) -> Verification:
    async with _one_connection_pool(settings) as pool:
        return await _incidents(pool, settings).verify(number)


@cli.command()
def postmortem(
    incident: Annotated[str, typer.Argument(help="INC-n (or n)", metavar="INC-n")],
) -> None:
    """Print the post-mortem draft of an incident (Markdown, built from its timeline)."""
    number = _incident_number(incident)
    settings = _settings()
    logs.configure(settings.log_format or "console", "WARNING")
    try:
        markdown = asyncio.run(_postmortem(settings, number))
    except (NotFound, ConfigError) as exc:
        raise _fail(str(exc)) from None
    except IntegrationError as exc:  # Slack, asked for people's names, did not answer
        raise _fail(f"cannot name the people in it: {_with_cause(exc)}", 1) from None
    typer.echo(markdown, nl=False)


async def _postmortem(settings: Settings, number: int) -> str:
    """The draft as the file posted in Slack has it: mentions as people's names."""
    from bot.domain.drafts import named
    from bot.domain.postmortem import render
    from bot.runtime.directory import open_directory

    async with _one_connection_pool(settings) as pool:
        incident, entries = await _incidents(pool, settings).timeline(number)
    async with open_directory(settings) as directory:
        return await named(render(incident, entries), directory)


@cli.command()
def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="default: PORT (3000)")] = None,
    link: Annotated[
        list[str] | None, typer.Option("--link", help="Print a fresh page link for INC-n.")
    ] = None,
) -> None:
    """Serve the read-only incident pages against the local (embedded) database."""
    numbers = [_incident_number(ref) for ref in link or []]
    settings = _settings()
    logs.configure(settings.log_format or "console", settings.log_level)
    from bot.runtime.pages import serve_pages

    try:
        asyncio.run(
            serve_pages(
                settings, host=host, port=port or settings.port, links_for=numbers, say=typer.echo
            )
        )
    except (ValueError, ConfigError, OSError) as exc:
        raise _fail(str(exc)) from None


@playbooks_cli.command("validate")
def playbooks_validate(
    directory: Annotated[
        Path | None, typer.Argument(help="default: PLAYBOOKS_DIR, else the bundled playbooks/")
    ] = None,
) -> None:
    """Load every playbook and policy file; exit 1 with file:line errors if any is invalid."""
    from bot.domain.approvals import load_approvals
    from bot.domain.policy import load_severity_policy
    from bot.playbooks.catalogue import validate_dir

    folder = directory or _settings().playbooks_dir
    if not folder.is_dir():
        raise _fail(f"{folder} is not a directory")
    errors: list[str] = []
    for load in (load_severity_policy, load_approvals):
        try:
            load(folder)
        except ConfigError as exc:
            errors.append(str(exc))
    catalogue, problems = validate_dir(folder)
    errors.extend(problems)
    for error in errors:
        typer.echo(error)
    if errors:
        typer.echo(f"{plural(len(errors), 'error')} in {folder}")
        raise typer.Exit(1)
    names = ", ".join(sorted(catalogue.playbooks))
    typer.echo(
        f"{len(catalogue.playbooks)} playbooks OK ({names}); severities.yml OK; approvals.yml OK"
    )


def main() -> None:
    cli(prog_name="icbot")


if __name__ == "__main__":
    main()
