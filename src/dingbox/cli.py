"""The `dingbox` command (DESIGN §5): serve, dispatch, org load, org export.

Exit codes: 0 done, 1 runtime failure, 2 usage or configuration error (with a one-line reason).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from typing import Any, NoReturn

import click

from dingbox import logs
from dingbox.api.origin import is_loopback
from dingbox.domain.org import OrgError
from dingbox.settings import LIMIT_PROFILES, SETTINGS_BY_NAME, Settings, SettingsError
from dingbox.store import Store, StoreError, is_postgres, open_store, org_sql

DEMO_CORP = "dingdemo"
# click 8.2+ raises this for a bare `dingbox`; older versions print the help themselves
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def fail(reason: str, code: int = 2) -> NoReturn:
    click.echo(f"dingbox: {reason}", err=True)
    sys.exit(code)


def _help(name: str) -> str:
    setting = SETTINGS_BY_NAME[name]
    return f"{setting.help} [env {setting.env}]"


def _settings(**explicit: Any) -> Settings:
    try:
        return Settings.build(explicit, os.environ)
    except SettingsError as exc:
        fail(str(exc))


def _open(url: str, *, writable: bool = True, synchronous: str = "normal") -> Store:
    try:
        return open_store(url, writable=writable, synchronous=synchronous)
    except StoreError as exc:
        fail(str(exc))


def _load_files(store: Store, paths: tuple[str, ...]) -> None:
    """Load every file or none: all are read first, then written in one transaction."""
    from dingbox.services.org import load_files, read_org_file

    try:
        load_files(store, [(path, read_org_file(path)) for path in paths])
    except OrgError as exc:
        store.close()
        fail(f"invalid_org: {exc}")


class _Main(click.Group):
    """The command group, reporting usage errors in one line (`dingbox: <reason>`, exit 2) as §5 asks."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except _NO_ARGS_IS_HELP as exc:
            exc.show()  # plain `dingbox`: the help text is the answer
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            fail(" ".join(exc.format_message().split()), exc.exit_code)
        except click.Abort:
            fail("interrupted", 1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dingbox")
def main() -> None:
    """dingbox: a self-hosted, DingTalk-compatible messaging server."""


@main.command()
@click.option("--host", default=None, help=_help("host"))
@click.option("--port", type=int, default=None, help=_help("port"))
@click.option("--db", default=None, help=_help("db"))
@click.option("--org", "org", multiple=True, help=_help("org"))
@click.option("--no-demo", is_flag=True, default=None, help=_help("no_demo"))
@click.option("--limits", type=click.Choice(LIMIT_PROFILES), default=None, help=_help("limits"))
@click.option("--dispatchers", type=int, default=None, help=_help("dispatchers"))
@click.option("--auth", default=None, help=_help("auth"))
@click.option("--test-controls", is_flag=True, default=None, help=_help("test_controls"))
@click.option("--dispatch-delay", type=float, default=None, help=_help("dispatch_delay"))
@click.option("--batch-size", type=int, default=None, help=_help("batch_size"))
@click.option("--batch-pause", type=float, default=None, help=_help("batch_pause"))
@click.option("--body-limit", type=int, default=None, help=_help("body_limit"))
@click.option("--allowed-host", "allowed_host", multiple=True, help=_help("allowed_host"))
@click.option("--header-timeout", type=float, default=None, help=_help("header_timeout"))
@click.option("--body-timeout", type=float, default=None, help=_help("body_timeout"))
@click.option("--keep-alive-timeout", type=int, default=None, help=_help("keep_alive_timeout"))
@click.option("--max-connections", type=int, default=None, help=_help("max_connections"))
@click.option("--log-level", default=None, help=_help("log_level"))
@click.option("--synchronous", type=click.Choice(["normal", "full"]), default=None, help=_help("synchronous"))
@click.option("--robot-minute-limit", type=int, default=None, help=_help("robot_minute_limit"))
def serve(org: tuple[str, ...], allowed_host: tuple[str, ...], **options: Any) -> None:
    """Serve the DingTalk APIs, the dingbox API and the web UI."""
    settings = _settings(org=org or None, allowed_host=allowed_host or None, **options)
    logs.configure(settings.log_level)
    if not settings.auth and not is_loopback(settings.host):
        click.echo(
            f"dingbox: warning: listening on {settings.host} without --auth: anyone who can reach this"
            " address can read and change this dingbox's data",
            err=True,
        )
    store = _open(settings.db, synchronous=settings.synchronous)
    _load_files(store, settings.org)
    if not settings.org and not settings.no_demo and store.read_sync(org_sql.is_empty):
        from dingbox.services.org import demo_document, load_files

        load_files(store, [("demo", demo_document())])
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        store.close()
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
    port = sock.getsockname()[1]
    _run(settings, store, sock, port)


def _announcement(settings: Settings, store: Store, port: int) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    lines = [f"ui=http://{shown}:{port}/ui/", f"api=http://{shown}:{port}/"]
    corps = {c["corp_id"]: c for c in store.read_sync(org_sql.corps_overview)}
    demo = corps.get(DEMO_CORP)
    if demo is not None:
        internal = next((a for a in demo["apps"] if a["type"] == "internal"), None)
        isv = next((a for a in demo["apps"] if a["type"] == "isv"), None)
        suites = store.read_sync(org_sql.suite_secrets)
        lines.append(f"corp_id={DEMO_CORP}")
        if internal:
            lines += [
                f"agent_id={internal['agent_id']}",
                f"app_key={internal['app_key']}",
                f"app_secret={internal['app_secret']}",
            ]
        if isv and isv["suite_key"] in suites:
            lines += [f"suite_key={isv['suite_key']}", f"suite_secret={suites[isv['suite_key']]}"]
        if demo["robots"]:
            lines.append(f"robot_code={demo['robots'][0]['robot_code']}")
        if demo["templates"]:
            lines.append(f"template_id={demo['templates'][0]['template_id']}")
    return "\n".join(lines)


def _run(settings: Settings, store: Store, sock: socket.socket, port: int) -> None:
    import uvicorn

    from dingbox.app import create_app
    from dingbox.transport import DeadlineProtocol

    app = create_app(settings, store)
    announcement = _announcement(settings, store, port)

    class AnnouncingServer(uvicorn.Server):
        """Prints the key=value lines once the socket listens: a script that reads `ui=` connects at once."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                click.echo(announcement)
                sys.stdout.flush()

    config = uvicorn.Config(
        app,
        http=DeadlineProtocol.configured(settings),
        ws="none",  # no WebSocket surface: an upgrade request is an ordinary request
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
        lifespan="on",
        timeout_keep_alive=settings.keep_alive_timeout,
        timeout_graceful_shutdown=5,
    )
    server = AnnouncingServer(config)
    # uvicorn stops gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler it found
    # installed; this one turns that into a normal return, so Ctrl-C exits 0 rather than
    # KeyboardInterrupt's 1. Installed before uvicorn starts, so Ctrl-C during its startup is a clean
    # stop too: until uvicorn takes over, it makes the server stop at its first tick.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
    try:
        server.run(sockets=[sock])
    except Exception as exc:  # a crash of the server itself: report it in one line
        fail(f"server failed: {exc}", 1)
    finally:
        store.close()


@main.command()
@click.option("--db", default=None, help=_help("db"))
@click.option("--dispatchers", type=int, default=None, help=_help("dispatchers"))
@click.option("--limits", type=click.Choice(LIMIT_PROFILES), default=None, help=_help("limits"))
@click.option("--batch-size", type=int, default=None, help=_help("batch_size"))
@click.option("--log-level", default=None, help=_help("log_level"))
def dispatch(**options: Any) -> None:
    """Run dispatcher loops only, against a PostgreSQL store shared with `serve` processes."""
    import asyncio

    from dingbox.dispatch import standalone

    settings = _settings(**options)
    logs.configure(settings.log_level)
    if not is_postgres(settings.db):
        fail("dispatch runs beside serve on a shared PostgreSQL store; a SQLite store is dispatched by serve")
    if settings.dispatchers < 1:
        fail("dispatch needs --dispatchers 1 or more")
    store = _open(settings.db)

    def started() -> None:
        click.echo(f"dispatchers={settings.dispatchers}")
        sys.stdout.flush()

    try:
        dead = asyncio.run(standalone.run(settings, store, started))
    except StoreError as exc:
        fail(str(exc), 1)
    finally:
        store.close()
    if dead:
        fail(f"{dead} dispatcher loop(s) died", 1)


@main.group()
def org() -> None:
    """Load or export the org (corps, departments, users, apps, robots, templates, groups)."""


@org.command("load")
@click.argument("files", nargs=-1, required=True)
@click.option("--db", default=None, help=_help("db"))
def org_load(files: tuple[str, ...], db: str | None) -> None:
    """Load or replace the corps named in FILES (YAML or JSON)."""
    settings = _settings(db=db)
    store = _open(settings.db)
    _load_files(store, files)
    store.close()
    click.echo(f"loaded {len(files)} file(s) into {settings.db}")


@org.command("export")
@click.option("--db", default=None, help=_help("db"))
def org_export(db: str | None) -> None:
    """Print the org as YAML."""
    from dingbox.services.org import export_yaml

    settings = _settings(db=db)
    store = _open(settings.db, writable=False)  # a read-only snapshot can still be exported
    try:
        click.echo(export_yaml(store.read_sync(org_sql.export_document)), nl=False)
    finally:
        store.close()
