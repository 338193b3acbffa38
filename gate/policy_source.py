"""The policy the gate judges by: allowlist files (+ approved exceptions from the server), the
environment's thresholds from gate.yaml, and the waivers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from gate.interface import GateError
from mirror.allowlist_files import collector_paused, read_policy_sources
from mirror.policy import Allowlist, Ecosystem, ExceptionGrant, InvalidAllowlist, build_allowlist, load_policy_files
from mirror.policy.gate_rules import DEFAULT_GATE, WAIVERS_FILE, GateThresholds, Waiver

if TYPE_CHECKING:
    import httpx

_SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class GatePolicyInputs:
    allowlist: Allowlist
    thresholds: GateThresholds
    waivers: tuple[Waiver, ...]
    sources: tuple[str, ...]
    """Files (and the server) the policy came from, for the audit record."""


class ServerClient:
    """The Airlock server, for `--server`: exceptions in, decisions out. Unreachable → GateError."""

    def __init__(self, url: str, token: str | None, client: httpx.Client) -> None:
        self.url = url.rstrip("/")
        self.client = client  # only built with --server: httpx is imported by the caller then
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _call(self, method: str, path: str, **kwargs) -> httpx.Response:
        import httpx

        try:
            response = self.client.request(method, f"{self.url}{path}", headers=self.headers, **kwargs)
        except httpx.HTTPError as exc:
            raise GateError(
                f"Airlock server {self.url} unreachable ({exc.__class__.__name__}): the gate cannot decide without it; "
                "check --server, or run without --server to use the local allowlists only"
            ) from None
        if response.status_code in (401, 403):
            raise GateError(
                f"Airlock server {self.url} refused the gate (HTTP {response.status_code}): set AIRLOCK_TOKEN to a cicd-process token"
            )
        return response

    def grants(self, ecosystem: Ecosystem, env: str) -> list[ExceptionGrant]:
        response = self._call("GET", f"/api/v1/allowlists/{ecosystem.value}/{env}")
        if response.status_code == 404:
            return []  # the server has no such environment for this ecosystem: no exceptions either
        if response.status_code != 200:
            raise GateError(
                f"Airlock server {self.url} answered HTTP {response.status_code} for the {ecosystem.value} allowlist"
            )
        return [
            ExceptionGrant(
                item["id"],
                ecosystem,
                item["package"],
                item["versions"],
                frozenset(item["environments"]),
                datetime.fromisoformat(item["expires_at"]),
                item["approved_by"],
                item.get("project"),
            )
            for item in response.json().get("exceptions", [])
        ]

    def post_decision(self, body: dict) -> int | None:
        response = self._call("POST", "/api/v1/gate/decisions", json=body)
        if response.status_code != 201:
            raise GateError(
                f"Airlock server {self.url} did not record the decision (HTTP {response.status_code}: {response.text[:200]})"
            )
        return response.json().get("audit_id")


def load_gate_policy(
    allowlists: Path, waivers_file: Path | None, env: str, server: ServerClient | None
) -> GatePolicyInputs:
    now = datetime.now(UTC)
    try:
        sources = read_policy_sources([allowlists])
        if waivers_file is not None:
            if not waivers_file.is_file():
                raise GateError(f"--waivers {waivers_file}: no such file")
            sources = [s for s in sources if os.path.basename(s[0]) != WAIVERS_FILE]
            sources.append((str(waivers_file), waivers_file.read_text(encoding="utf-8")))
        policy = load_policy_files(sources, now, waivers_file=str(waivers_file) if waivers_file else None)
    except InvalidAllowlist as exc:
        shown = "; ".join(str(d) for d in exc.diagnostics[:_SHOWN_PROBLEMS])
        more = f" (and {len(exc.diagnostics) - _SHOWN_PROBLEMS} more)" if len(exc.diagnostics) > _SHOWN_PROBLEMS else ""
        raise GateError(
            f"the allowlists in {allowlists} are invalid, so nothing can be vetted: {shown}{more}; "
            f"run `airlock allowlist check {allowlists}`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GateError(f"cannot read {waivers_file}: {exc}") from None
    grants: list[ExceptionGrant] = []
    if server is not None:
        for ecosystem in (Ecosystem.PYPI, Ecosystem.CONDA, Ecosystem.CONTAINERS):  # containers: approved base images
            if ecosystem in policy.files:
                grants += server.grants(ecosystem, env)
    with collector_paused():
        allowlist = build_allowlist(policy, grants, now)
    if policy.gate is not None and env not in policy.gate.environments:
        raise GateError(
            f"{policy.gate.file} declares no environment {env!r} (declared: {', '.join(sorted(policy.gate.environments))})"
        )
    thresholds = policy.gate.environments[env] if policy.gate is not None else DEFAULT_GATE.get(env)
    if thresholds is None:
        raise GateError(
            f"no gate policy for environment {env!r}: add it to {allowlists}/gate.yaml (fail_on, unknown, secrets, max_db_age)"
        )
    names = tuple(sorted(s[0] for s in sources)) + ((f"{server.url} ({len(grants)} exceptions)",) if server else ())
    return GatePolicyInputs(allowlist, thresholds, policy.waivers, names)
