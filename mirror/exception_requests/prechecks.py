"""Pre-checks attached to every exception request and shown to the approver.

Each check is a value with a status and a sentence; one that could not run says so
(`skipped`, with why), so an approver never mistakes "not checked" for "clean".
"""

from __future__ import annotations

import difflib
import email.parser
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from mirror.advisory_feed import load_advisories
from mirror.children.devpi import INDEX
from mirror.clock import utc_now
from mirror.policy import Allowlist, Ecosystem
from mirror.policy.advisories import severity_rank
from mirror.policy.conditions import ReleaseFacts, evaluate
from mirror.pypi.simple import JSON_V1, parse_devpi_page, parse_filename

# Widely installed names typosquatters imitate; the allowlist's own names are added per request.
POPULAR = (
    "numpy",
    "pandas",
    "requests",
    "scipy",
    "scikit-learn",
    "matplotlib",
    "torch",
    "tensorflow",
    "keras",
    "transformers",
    "urllib3",
    "setuptools",
    "boto3",
    "botocore",
    "pyyaml",
    "pydantic",
    "fastapi",
    "flask",
    "django",
    "jupyter",
    "jupyterlab",
    "xgboost",
    "lightgbm",
    "catboost",
    "mlflow",
    "azure-identity",
    "azure-ai-ml",
    "azure-storage-blob",
    "openai",
    "langchain",
    "pillow",
    "opencv-python",
    "sqlalchemy",
    "cryptography",
    "certifi",
    "idna",
    "six",
    "python-dateutil",
    "pytz",
    "protobuf",
    "grpcio",
    "psutil",
)


_CLIENT = httpx.Client(timeout=10.0, limits=httpx.Limits(max_keepalive_connections=8))
"""One pooled client for every pre-check (a fresh connection per call costs more than the call)."""
_METADATA_CACHE_SIZE = 512
_pages: dict[str, tuple[float, int, bytes]] = {}
_metadata: dict[str, str] = {}
_cache_lock = threading.Lock()


def _get_page(url: str, timeout: float, ttl: float) -> tuple[int, bytes]:
    """(status, body) of a project page, reused for a moment: a burst of requests for one project
    (a team asking at once, a retried form) costs the cache one fetch."""
    now = time.monotonic()
    cached = _pages.get(url)
    if cached is not None and now - cached[0] < ttl:
        return cached[1], cached[2]
    response = _CLIENT.get(url, headers={"Accept": JSON_V1}, timeout=timeout)
    with _cache_lock:
        if len(_pages) > 1024:
            _pages.clear()
        _pages[url] = (now, response.status_code, response.content)
    return response.status_code, response.content


def _get_metadata(url: str, timeout: float) -> tuple[int, str]:
    """A file's core metadata: immutable (the file's hash names it), so kept in a bounded cache."""
    text = _metadata.get(url)
    if text is not None:
        return 200, text
    response = _CLIENT.get(url, timeout=timeout)
    if response.status_code == 200:
        with _cache_lock:
            if len(_metadata) >= _METADATA_CACHE_SIZE:
                _metadata.pop(next(iter(_metadata)))
            _metadata[url] = response.text
    return response.status_code, response.text


_WHEEL_LIMIT = 64 << 20


def _fetch_wheel(url: str, timeout: float) -> bool:
    """Have devpi fetch (and keep) a wheel of at most `_WHEEL_LIMIT` bytes; False when it is larger."""
    received = 0
    with _CLIENT.stream("GET", url, timeout=timeout) as response:
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > _WHEEL_LIMIT:
                return False
    return True


@dataclass
class PrecheckContext:
    """What the checks consult; built once per allowlist (the service keeps it while the
    allowlist stands), so the name index and typosquat verdicts are shared by its requests."""

    devpi_url: str | None
    advisories_dir: Path | None
    known_names: set[str]
    timeout: float = 10.0
    page_ttl: float = 2.0
    """Seconds a project page is reused (AIRLOCK_PYPI_PAGE_TTL, as on the serving path)."""
    closure: Callable[[str, str, str | None, list[str]], list] | None = None
    """(ecosystem, package, versions, environments) -> what approving also needs (`closure.request`)."""
    allowlist: Allowlist | None = None
    """The allowlist in force: its environments' conditions and advisories (`conditions` check)."""
    _names_by_length: dict[int, list[str]] | None = field(default=None, repr=False)
    _typosquat: dict[str, Precheck] = field(default_factory=dict, repr=False)

    def names_of_length(self, low: int, high: int) -> list[str]:
        """Popular and allowlisted names `low` to `high` characters long, sorted."""
        if self._names_by_length is None:
            by_length: dict[int, list[str]] = {}
            for known in sorted(set(POPULAR) | self.known_names):
                by_length.setdefault(len(known), []).append(known)
            self._names_by_length = by_length
        return sorted(n for length in range(low, high + 1) for n in self._names_by_length.get(length, ()))


@dataclass(frozen=True)
class Precheck:
    """One check's verdict for the approver: `pass`, `warn`, `fail` or `skipped` (could not run: why)."""

    name: str
    status: str
    detail: str
    packages: tuple[dict[str, Any], ...] | None = None
    """The closure check: what an approval also needs (`package`, `requirement`, `required_by`)."""

    def as_dict(self) -> dict[str, Any]:
        """As the request row stores it (and the API shows it): `packages` only where there are some."""
        found: dict[str, Any] = {"name": self.name, "status": self.status, "detail": self.detail}
        if self.packages is not None:
            found["packages"] = list(self.packages)
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Precheck:
        packages = data.get("packages")
        return cls(data["name"], data["status"], data["detail"], tuple(packages) if packages is not None else None)


_check = Precheck


def run_prechecks(
    ecosystem: str, package: str, versions: str | None, context: PrecheckContext, environments: list[str] = ()
) -> list[Precheck]:
    name = canonicalize_name(package) if ecosystem == "pypi" else package.split()[0].lower()
    checks = [_similar_names(name, context)]
    if ecosystem != "pypi":
        reason = f"not run for {ecosystem}: Airlock's {ecosystem} upstream is not configured for pre-checks yet"
        checks += [_check(n, "skipped", reason) for n in ("upstream", "vulnerabilities", "licence")]
        return checks + (
            [_closure(ecosystem, package, None, list(environments), context)] if ecosystem == "conda" else []
        )
    matching, page_check, newest_wheel = _upstream_versions(name, versions, context)
    checks.append(page_check)
    checks.append(_vulnerabilities(name, matching, context))
    licence = _licence(name, newest_wheel, context)
    checks.append(licence)
    checks.append(_conditions(name, matching, list(environments), licence, context))
    if page_check.status == "pass":
        checks.append(_closure(ecosystem, name, versions, list(environments), context))
    return checks


def is_clean(checks: list[Precheck]) -> bool:
    """Clean = every check ran and passed (a skipped check is not clean: fail closed). The closure
    is judged apart: approving with it grants what it lists (`closure_grantable`)."""
    return all(check.status == "pass" for check in checks if check.name != "closure")


def closure_grantable(checks: list[Precheck]) -> bool:
    """The closure was computed and nothing in it is denied: an approval may include it."""
    found = [check for check in checks if check.name == "closure"]
    return not found or found[0].status in ("pass", "warn")


def closure_packages(checks: list[Precheck]) -> tuple[dict[str, Any], ...]:
    found = [check for check in checks if check.name == "closure" and check.packages]
    return found[0].packages if found else ()


def _closure(
    ecosystem: str, package: str, versions: str | None, environments: list[str], context: PrecheckContext
) -> Precheck:
    from mirror.closure.interface import ClosureError

    if context.closure is None or not environments:
        return _check("closure", "skipped", "no upstream index to resolve against")
    try:
        missing = context.closure(ecosystem, package, versions, environments)
    except (ClosureError, ValueError) as exc:
        return _check("closure", "skipped", f"could not be computed: {exc}")
    where = ", ".join(environments)
    if not missing:
        return _check("closure", "pass", f"{package} installs with what {where} already allows")
    denied = [m for m in missing if m.denied]
    names = ", ".join(m.package for m in missing)
    if denied:
        detail = f"{package} needs {', '.join(m.package for m in denied)}, which {where} denies ({denied[0].denied})"
        status = "fail"
    else:
        detail = (
            f"approving {package} also needs {names} — not allowed in {where}; approve with_closure to grant "
            f"{'them' if len(missing) > 1 else 'it'} too"
        )
        status = "warn"
    packages = tuple(
        {"package": m.package, "requirement": m.requirement, "required_by": list(m.required_by)} for m in missing
    )
    return Precheck("closure", status, detail, packages)


def transpositions_apart(a: str, b: str) -> int:
    """Optimal-string-alignment distance: typos, and swapped neighbours (`alpah`) count as one."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, 1):
            cost = char_a != char_b
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _similar_names(name: str, context: PrecheckContext) -> Precheck:
    verdict = context._typosquat.get(name)
    if verdict is None:
        if len(context._typosquat) > 10_000:
            context._typosquat.clear()
        verdict = context._typosquat[name] = _typosquat_check(name, context)
    return verdict


def _typosquat_check(name: str, context: PrecheckContext) -> Precheck:
    limit = 1 if len(name) <= 8 else 2
    # difflib's ratio 2M/(a+b) reaches 0.9 only when the shorter name is over 9/11 of the longer;
    # that range also holds every name within `limit` characters of this one's length.
    alike = [c for c in context.names_of_length(len(name) * 9 // 11, -(-len(name) * 11 // 9)) if c != name]
    close = [c for c in alike if abs(len(c) - len(name)) <= limit and transpositions_apart(name, c) <= limit]
    close += [c for c in difflib.get_close_matches(name, alike, n=3, cutoff=0.9) if c not in close]
    close = close[:3]
    if close:
        return _check(
            "typosquat",
            "warn",
            f"{name!r} is close to {', '.join(repr(c) for c in close)}: make sure it is not a typosquat",
        )
    return _check("typosquat", "pass", f"{name!r} is not close to an allowlisted or popular name")


def _upstream_versions(name: str, versions: str | None, context: PrecheckContext) -> tuple[list[str], Precheck, Any]:
    if context.devpi_url is None:
        return [], _check("upstream", "skipped", "no PyPI cache running"), None
    try:
        status, content = _get_page(f"{context.devpi_url}/{INDEX}/+simple/{name}/", context.timeout, context.page_ttl)
    except httpx.HTTPError as exc:
        return [], _check("upstream", "skipped", f"the PyPI cache did not answer ({exc.__class__.__name__})"), None
    if status == 404:
        return [], _check("upstream", "fail", f"{name} does not exist on the upstream index"), None
    if status != 200:
        return [], _check("upstream", "skipped", f"the upstream index is unreachable (HTTP {status})"), None
    page = parse_devpi_page(content)
    try:
        specifier = SpecifierSet(versions or "")
    except InvalidSpecifier:
        specifier = SpecifierSet()
    found: set[str] = set()
    wheels: list[tuple[Version, Any]] = []
    for link in page.files:
        parsed = parse_filename(link.filename)
        if parsed and parsed[0] == name and specifier.contains(parsed[1], prereleases=True):
            found.add(parsed[1])
            if link.filename.endswith(".whl"):
                wheels.append((Version(parsed[1]), link))
    matching = sorted(found, key=Version)
    if not matching:
        return [], _check("upstream", "fail", f"no release of {name} matches {versions!r} upstream"), None
    newest_wheel = max(wheels, key=lambda item: item[0]) if wheels else None
    return (
        matching,
        _check("upstream", "pass", f"{len(matching)} release(s) upstream match (newest {matching[-1]})"),
        newest_wheel,
    )


def _vulnerabilities(name: str, matching: list[str], context: PrecheckContext) -> Precheck:
    if context.advisories_dir is None or not context.advisories_dir.is_dir():
        return _check("vulnerabilities", "skipped", "no advisory data configured (AIRLOCK_ADVISORIES)")
    if not matching:
        return _check("vulnerabilities", "skipped", "no matching release to check")
    try:
        vulnerabilities = load_advisories(context.advisories_dir).for_package(name)
    except ValueError as exc:
        return _check("vulnerabilities", "skipped", str(exc))
    hits, strongest = [], 0
    for vulnerability in vulnerabilities:
        affected = [v for v in matching if vulnerability.affects(name, v)]
        if affected:
            fixes = vulnerability.affected[name].fixed_versions
            fixed = f", fixed in {', '.join(fixes)}" if fixes else ""
            aliases = f" (also {', '.join(vulnerability.aliases)})" if vulnerability.aliases else ""
            hits.append(
                f"{vulnerability.id}{aliases} {vulnerability.severity}: {vulnerability.title or 'no title'}; "
                f"affects {', '.join(affected)}{fixed}"
            )
            strongest = max(strongest, severity_rank(vulnerability.severity))
    if hits:
        return _check("vulnerabilities", "fail" if strongest >= severity_rank("HIGH") else "warn", "; ".join(hits))
    return _check(
        "vulnerabilities",
        "pass",
        f"no known advisory affects {', '.join(matching[-3:])}{' …' if len(matching) > 3 else ''}",
    )


def _conditions(
    name: str, matching: list[str], environments: list[str], licence: Precheck, context: PrecheckContext
) -> Precheck:
    """Whether the environments' conditions (malicious, vulnerable, licence) would withhold the
    newest matching release even once approved; its age is judged on every page and file."""
    allowlist = context.allowlist
    pypi = allowlist.policy.files.get(Ecosystem.PYPI) if allowlist else None
    if pypi is None or not matching or not environments:
        return _check("conditions", "skipped", "no PyPI allowlist, release or environment to judge")
    version = matching[-1]
    licence_text = licence.detail.split(": ", 1)[1] if licence.status == "pass" and ": " in licence.detail else None
    findings, malicious = [], False
    for env in environments:
        if env not in pypi.environments:
            continue
        conditions = replace(pypi.conditions_of(env), min_age=None)
        needs_advisories = conditions.block_vulnerable or conditions.block_malicious
        if not conditions.active or (needs_advisories and allowlist.advisories is None):
            continue
        facts = ReleaseFacts(None, licence_text, allowlist.advisory_facts(name, version) if needs_advisories else ())
        withheld = evaluate(conditions, f"{name} {version}", env, facts, utc_now())
        if withheld is not None:
            findings.append(withheld.reason)
            malicious = malicious or withheld.condition == "block_malicious"
    if findings:
        return _check(
            "conditions",
            "fail" if malicious else "warn",
            "approved, it would still be withheld: " + "; ".join(findings),
        )
    return _check("conditions", "pass", f"no condition of {', '.join(environments)} withholds {name} {version}")


def _licence(name: str, newest_wheel, context: PrecheckContext) -> Precheck:
    if newest_wheel is None or context.devpi_url is None:
        return _check("licence", "skipped", "no wheel with metadata to read")
    version, link = newest_wheel
    file_url = f"{context.devpi_url}/{INDEX}/+f/{link.relpath}"
    try:
        status, text = _get_metadata(f"{file_url}.metadata", context.timeout)
        if status == 404:
            # The upstream serves no PEP 658 file: once devpi holds the wheel, it reads METADATA from it.
            if not _fetch_wheel(file_url, context.timeout):
                return _check(
                    "licence",
                    "skipped",
                    f"{link.filename} is over {_WHEEL_LIMIT >> 20} MiB and its upstream serves no metadata",
                )
            for _ in range(20):  # devpi files the fetched wheel a moment after the response ends
                status, text = _get_metadata(f"{file_url}.metadata", context.timeout)
                if status != 404:
                    break
                time.sleep(0.1)
    except httpx.HTTPError as exc:
        return _check("licence", "skipped", f"metadata unavailable ({exc.__class__.__name__})")
    if status != 200:
        return _check("licence", "skipped", f"metadata unavailable (HTTP {status})")
    metadata = email.parser.Parser().parsestr(text)
    licence = metadata.get("License-Expression") or metadata.get("License")
    classifiers = [c.split("::")[-1].strip() for c in metadata.get_all("Classifier", []) if c.startswith("License ::")]
    text = licence or ", ".join(classifiers)
    if not text or text.strip().upper() in ("UNKNOWN", ""):
        return _check("licence", "warn", f"{name} {version} declares no licence in its metadata")
    return _check("licence", "pass", f"{name} {version}: {text.strip()[:200]}")
