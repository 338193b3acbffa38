"""The closure of one exception request: what approving it would also need.

The request is added to the environment's allowlist as the grant an approval would create, and the
closure check runs for the requested package alone (PyPI: uv on each target; conda: the record's
dependencies in the channels' repodata). Each environment the request names is checked.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from mirror.closure.interface import ClosureError, Missing
from mirror.policy import Allowlist, Ecosystem, ExceptionGrant, build_allowlist


def request_closure(
    allowlist: Allowlist,
    ecosystem: str,
    package: str,
    versions: str | None,
    environments: list[str],
    upstream: str,
    cache: Path,
    timeout: float,
    requester: str,
) -> list[Missing]:
    """Missing packages if the request were approved (union over its environments). Raises
    ClosureError when it cannot be decided, ValueError for a request no grant could express."""
    now = datetime.now(UTC)
    grant = ExceptionGrant(
        "request", Ecosystem(ecosystem), package, versions, frozenset(environments), now + timedelta(days=1), requester
    )
    with_grant = build_allowlist(allowlist.policy, [*allowlist.grants, grant], now)
    found: dict[str, Missing] = {}
    for env in environments:
        if ecosystem == "pypi":
            from mirror.closure.pypi import pypi_closure
            from mirror.policy.pypi import normalize

            targets = with_grant.policy.files[Ecosystem.PYPI].targets_of(env).each()
            report = pypi_closure(
                with_grant,
                env,
                targets,
                upstream,
                cache / "pypi",
                requirements={normalize(package): requester},
                timeout=timeout,
            )
        elif ecosystem == "conda":
            from mirror.closure.conda import conda_closure

            name = package.split()[0].lower()
            report = conda_closure(with_grant, env, timeout)
            report = type(report)(env, "conda", tuple(m for m in report.missing if m.required_by[0].split()[0] == name))
        else:
            return []
        if report.unsatisfiable:
            raise ClosureError(f"{package} cannot be installed in {env}: {report.unsatisfiable[0].explanation}")
        for missing in report.missing:
            found.setdefault(missing.package, missing)
    return list(found.values())
