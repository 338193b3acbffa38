"""What `airlock up` prints when it starts, and `airlock status` after: the client settings per
environment (pip, uv, conda, docker) and what is not ready yet, with what to do about it."""

from __future__ import annotations

import sys
from typing import Any

from mirror.policy import Allowlist, Ecosystem
from mirror.settings import Settings


def client_settings(settings: Settings, allowlist: Allowlist | None) -> list[dict[str, Any]]:
    """What to give pip, uv, conda and docker per environment, naming the allowlist's own conda
    channels and registry upstreams (a placeholder only where it declares none)."""
    base = settings.base_url
    host = base.split("://", 1)[-1]
    environments = allowlist.environments(Ecosystem.PYPI) if allowlist else []
    channels = _declared(allowlist, Ecosystem.CONDA) or ["CHANNEL"]
    upstreams = _declared(allowlist, Ecosystem.CONTAINERS)
    upstream = upstreams[0] if len(upstreams) == 1 else "UPSTREAM"
    choices = f"; UPSTREAM: {' or '.join(upstreams)}" if len(upstreams) > 1 else ""
    rows = []
    for env in environments:
        index = f"{base}/pypi/{env}/simple/"
        rows.append(
            {
                "environment": env,
                "pip": f"pip install --index-url {index} PACKAGE   (or PIP_INDEX_URL={index})",
                "uv": f'uv pip install --index-url {index} PACKAGE   (or UV_INDEX_URL={index}; uv add: [[tool.uv.index]] url = "{index}", default = true)',
                "conda": "conda install --override-channels "
                + " ".join(f"-c {base}/conda/{env}/{channel}" for channel in channels)
                + " PACKAGE",
                "docker": f"docker pull {host}/{env}/{upstream}/REPOSITORY:TAG   (FROM {host}/{env}/{upstream}/… in a Dockerfile{choices})",
                "trusted_host": host
                if base.startswith("http://") and not host.startswith(("127.", "localhost"))
                else None,
            }
        )
    return rows


def _declared(allowlist: Allowlist | None, ecosystem: Ecosystem) -> list[str]:
    """The conda channels or registry upstreams a policy file declares, by name."""
    policy_file = allowlist.policy.files.get(ecosystem) if allowlist else None
    return sorted(policy_file.context or {}) if policy_file else []


def print_banner(settings: Settings, allowlist: Allowlist, registry_causes: dict[str, str]) -> None:
    lines = [
        f"Airlock is serving on {settings.base_url}  (allowlists: {settings.allowlists}, data: {settings.data_dir})"
    ]
    for row in client_settings(settings, allowlist):
        lines.append(f"  [{row['environment']}]")
        lines.append(f"    pip: {row['pip']}")
        lines.append(f"    uv:  {row['uv']}")
        lines.append(f"    conda: {row['conda']}")
        lines.append(f"    docker: {row['docker']}")
    waiting = not_ready(settings, allowlist, registry_causes)
    if waiting:
        lines.append("Not ready yet:")
        lines.extend(f"  - {line}" for line in waiting)
    lines.append("Stop with Ctrl-C.")
    print("\n".join(lines), file=sys.stderr, flush=True)


def not_ready(settings: Settings, allowlist: Allowlist, registry_causes: dict[str, str]) -> list[str]:
    """What the client settings above do not serve yet, and what to do about it."""
    from mirror.conda.channel import live_channel  # rattler and friends: only when there is a conda file

    waiting = [
        f"base images from `{name}`: {cause} (retrying in the background; `airlock status` shows it)"
        for name, cause in sorted(registry_causes.items())
    ]
    conda = allowlist.policy.files.get(Ecosystem.CONDA)
    for channel in sorted((conda.context or {}) if conda else {}):
        unsynced = [
            env
            for env in allowlist.environments(Ecosystem.CONDA)
            if not any(live_channel(settings.data_dir, env, channel).glob("*/repodata.json"))
        ]
        if unsynced:
            waiting.append(
                f"conda channel `{channel}` is not synced for {', '.join(unsynced)} (its URLs answer 503): "
                f"run `airlock sync conda`"
            )
    return waiting
