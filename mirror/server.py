"""`airlock up`: the whole service on one machine — devpi as a child on loopback, the API in front.

Stops every child on Ctrl-C or SIGTERM (uvicorn handles the signal, then this module stops the
children); a child also dies with Airlock if Airlock is killed (see `children.supervisor`).
"""

from __future__ import annotations

import gc
import logging
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

import uvicorn

from mirror.allowlist_watch import AllowlistWatcher
from mirror.app import create_app
from mirror.auth.access import AccessControl
from mirror.auth.denials import DenialSummary
from mirror.banner import print_banner
from mirror.children.devpi import DevpiServer
from mirror.children.supervisor import ChildError
from mirror.exception_requests.prechecks import PrecheckContext
from mirror.exception_requests.store import expire_due, fingerprint, grants
from mirror.exception_requests.workflow import ExceptionRequests
from mirror.logs import configure_logging
from mirror.parts import ServiceParts
from mirror.policy import Allowlist, Ecosystem, InvalidAllowlist
from mirror.policy_changes import record_advisory_change
from mirror.settings import Settings
from mirror.store.db import Database, DatabaseUnavailable
from mirror.webhooks import WebhookSender

log = logging.getLogger("airlock")


def open_database(settings: Settings) -> Database:
    database = Database(settings.resolved_database_url)
    database.migrate()
    return database


class PrecheckContexts:
    """One pre-check context per allowlist (an immutable object, replaced on every change), so the
    name index and typosquat verdicts are shared by the requests made while it stands."""

    def __init__(self, settings: Settings, devpi_url: str | None) -> None:
        self._settings = settings
        self._devpi_url = devpi_url
        self._kept: tuple[Allowlist, PrecheckContext] | None = None

    def __call__(self, allowlist: Allowlist) -> PrecheckContext:
        if self._kept is None or self._kept[0] is not allowlist:
            names = {
                name for env in allowlist.environments(Ecosystem.PYPI) for name in allowlist.names(Ecosystem.PYPI, env)
            }
            settings = self._settings

            def closure(ecosystem: str, package: str, versions: str | None, environments: list[str]) -> list:
                from mirror.closure.request import request_closure

                return request_closure(
                    allowlist,
                    ecosystem,
                    package,
                    versions,
                    environments,
                    settings.pypi_upstream,
                    settings.data_dir / "closure",
                    settings.upstream_timeout,
                    "requester",
                )

            self._kept = (
                allowlist,
                PrecheckContext(
                    self._devpi_url,
                    settings.advisories,
                    names,
                    page_ttl=settings.pypi_page_ttl,
                    closure=closure,
                    allowlist=allowlist,
                ),
            )
        return self._kept[1]


def build_workflow(
    settings: Settings, database: Database, devpi_url: str | None, on_conda_change: Callable[[], None] = lambda: None
) -> tuple[AccessControl, AllowlistWatcher, ExceptionRequests]:
    """Access control, the allowlist in force (files plus approved exceptions, read from the
    database) and the exception workflow that changes it."""
    access = AccessControl(database, denials=DenialSummary(settings.denial_summary_seconds))
    policy = AllowlistWatcher(
        settings.allowlists,
        grants=lambda: grants(database),
        advisories=settings.advisories,
        on_advisories=lambda before, after: record_advisory_change(
            database, settings.webhook_url_list, settings.data_dir, before, after
        ),
    )

    def changed(ecosystem: str) -> None:
        policy.invalidate()
        if ecosystem == "conda":
            on_conda_change()  # a conda approval must reach the curated channel: sync it

    workflow = ExceptionRequests(
        database,
        access,
        policy.current,
        changed,
        PrecheckContexts(settings, devpi_url),
        settings.webhook_url_list,
        settings.self_service,
        settings.max_exception_days,
    )
    return access, policy, workflow


def run_service(settings: Settings) -> int:
    configure_logging(settings.log_format, settings.log_level)
    try:
        listener = listening_socket(settings.host, settings.port)
    except OSError as exc:
        print(
            f"airlock: cannot listen on {settings.listen}: {exc.strerror or exc}; is Airlock already running there "
            "(`airlock status`)? Stop it, or set AIRLOCK_LISTEN to a free HOST:PORT",
            file=sys.stderr,
        )
        return 1
    try:
        return _serve(settings, listener)
    finally:
        listener.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """The public port, bound before any child starts: a taken port is one line and exit 1, not
    devpi and the registry caches started and stopped around uvicorn's log of the error."""
    host = host.strip("[]")
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    return listener


def _serve(settings: Settings, listener: socket.socket) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        database = open_database(settings)
    except DatabaseUnavailable as exc:
        print(f"airlock: {exc}", file=sys.stderr)
        return 1
    devpi = DevpiServer(
        settings.data_dir, settings.pypi_upstream, settings.devpi_cache_expiry, settings.upstream_timeout
    )
    conda_sync = BackgroundCondaSync(settings)
    try:
        access, policy, workflow = build_workflow(
            settings, database, devpi.url, on_conda_change=lambda: conda_sync.request(policy)
        )
    except InvalidAllowlist as exc:
        print(
            f"airlock: the allowlists in {settings.allowlists} are invalid; fix them (airlock allowlist check):\n{exc}",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:  # the advisory folder holds a file that is not an OSV record
        print(f"airlock: AIRLOCK_ADVISORIES: {exc}; fix or remove it", file=sys.stderr)
        return 1
    try:
        devpi.start()
    except ChildError as exc:
        print(f"airlock: cannot start the PyPI cache: {exc}", file=sys.stderr)
        devpi.stop()
        return 1
    caches = start_registry_caches(settings, policy.current())
    webhooks = WebhookSender(database, settings.webhook_secret.get_secret_value() if settings.webhook_secret else None)
    webhooks.start()
    stop_polling = threading.Event()
    poller = threading.Thread(
        target=_poll_allowlists,
        args=(policy, access, stop_polling, lambda: conda_sync.request(policy)),
        name="allowlist-watch",
        daemon=True,
    )
    poller.start()

    def health() -> dict[str, Any]:
        parts = {
            "devpi": {
                "healthy": devpi.healthy(),
                "url": devpi.url,
                "pid": devpi.child.pid,
                "restarts": devpi.child.restarts,
            }
        }
        # A registry cache serves one upstream's base images: when it is down those get a 503,
        # everything else works, so it degrades the service without making it unready.
        for cache in list(caches.caches):
            parts[cache.child.name] = {
                "healthy": cache.healthy(),
                "url": cache.url,
                "pid": cache.child.pid,
                "restarts": cache.child.restarts,
                "optional": True,
            }
        for name in caches.pending:
            parts[f"registry-{name}"] = {
                "healthy": False,
                "optional": True,
                "state": caches.state(name),
            }
        return parts

    def stop_children() -> None:
        if stop_polling.is_set():
            return
        stop_polling.set()
        try:
            access.denials.flush(database, everything=True)
        except Exception:  # the database may be gone already; the counts are in the metric
            log.exception("could not write the last summary of refused unauthenticated requests")
        conda_sync.stop()
        caches.stop()
        webhooks.stop()
        devpi.stop()
        database.dispose()
        log.info("airlock stopped: devpi-server and every other child are down")

    app = create_app(
        ServiceParts(
            settings,
            database,
            access,
            policy,
            workflow,
            health,
            devpi.url,
            devpi_files=devpi.stored_files,
            registry_caches=caches.urls,
            on_stop=stop_children,
        )
    )
    print_banner(settings, policy.current(), dict(caches.causes))
    # Everything built so far lives as long as the process: move it out of the collector's view.
    # Otherwise each full collection rescans it while a request waits (bench/api.py's p99 halved).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    try:
        server.run(sockets=[listener])
    finally:
        stop_children()  # also when startup failed and the lifespan never ran
    return 0 if server.started else 1


def start_registry_caches(settings: Settings, allowlist: Allowlist):
    """One pull-through registry cache per upstream in containers.yaml (none without the file)."""
    from mirror.children.registry import RegistryCaches, read_registry_storage

    policy_file = allowlist.policy.files.get(Ecosystem.CONTAINERS)
    upstreams = {u.name: u.url for u in (policy_file.context or {}).values()} if policy_file else {}
    storage = read_registry_storage(settings.registry_storage) if settings.registry_storage else None
    caches = RegistryCaches(settings.data_dir, upstreams, settings.registry_retry_seconds, storage)
    caches.start()
    return caches


class BackgroundCondaSync:
    """Runs `airlock sync conda` work in a thread when a conda exception changes; requests made
    while one runs are merged into one more run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._policy: AllowlistWatcher | None = None
        self._thread = threading.Thread(target=self._run, name="conda-sync", daemon=True)
        self._thread.start()

    def request(self, policy: AllowlistWatcher) -> None:
        self._policy = policy
        self._wanted.set()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()

    def _run(self) -> None:
        import httpx

        from mirror.conda.channel import CondaSync

        while not self._stop.is_set():
            self._wanted.wait()
            self._wanted.clear()
            if self._stop.is_set() or self._policy is None:
                return
            try:
                with httpx.Client(timeout=self.settings.upstream_timeout) as client:
                    report = CondaSync(self.settings.data_dir, client).run(self._policy.current())
                for problem in report.problems:
                    log.error("conda sync after an exception change: %s", problem)
                log.info(
                    "conda sync after an exception change: published %s", ", ".join(report.published) or "nothing new"
                )
            except Exception:
                log.exception("conda sync after an exception change failed; the previous channels stay served")


def _conda_grants(allowlist: Allowlist) -> frozenset:
    return frozenset((g.id, g.package, g.expires_at) for g in allowlist.grants if g.ecosystem == Ecosystem.CONDA)


def _poll_allowlists(
    policy: AllowlistWatcher, access: AccessControl, stop: threading.Event, on_conda_change: Callable[[], None]
) -> None:
    """Off the request path (requests only read a reference): record expired exceptions and the
    summaries of refused unauthenticated requests (the writes no person makes), re-read changed
    allowlist files, and rebuild when the approved exceptions changed, also through another
    replica sharing the database. When the conda exceptions changed — whichever replica decided —
    this replica syncs its own curated channels, so that every replica serves the decision."""
    database = access.database
    seen = fingerprint(database)
    conda = _conda_grants(policy.current())
    while not stop.wait(policy.interval):
        try:
            expire_due(database)
            access.denials.flush(database)
            current = fingerprint(database)
            policy.poll(force=current != seen)
            seen = current
            now_conda = _conda_grants(policy.current())
            if now_conda != conda:
                conda = now_conda
                on_conda_change()
        except Exception:  # keep watching: the previous allowlist stays in force
            log.exception("allowlist reload failed")
