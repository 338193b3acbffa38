"""The upstream's own project page, read for what devpi does not keep: PEP 700 `size` and
`upload-time`, PEP 658 metadata hashes, yanked reasons, PEP 792 status.

Pure parsing of an untrusted page (PEP 691 JSON or PEP 503 HTML). Every value is checked before it
may reach one of Airlock's pages: a file whose hash is not hex, whose size is absurd or whose upload
time is not ISO 8601 is withheld with a reason, and the rest of the page still counts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from packaging.utils import canonicalize_name

from mirror.pypi.simple import JSON_V1, FileLink, ProjectPage

ACCEPT = f"{JSON_V1}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
"""What Airlock asks the upstream for: JSON (it carries PEP 700 fields), HTML where that is all."""
MAX_FILE_SIZE = 1 << 40
"""1 TiB: no package is larger; a bigger `size` is a broken or hostile page."""
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,254}$")
_HEX = {
    "sha256": re.compile(r"^[0-9a-f]{64}$"),
    "sha384": re.compile(r"^[0-9a-f]{96}$"),
    "sha512": re.compile(r"^[0-9a-f]{128}$"),
}
_STATUSES = frozenset({"active", "archived", "quarantined", "deprecated"})


@dataclass(frozen=True, slots=True)
class UpstreamFile:
    """What the upstream says of one file, checked."""

    filename: str
    url: str
    """Absolute URL of the file upstream."""
    sha256: str | None = None
    size: int | None = None
    upload_time: str | None = None
    """ISO 8601 in UTC, as PEP 700 writes it (`2024-01-31T12:00:00.123456Z`)."""
    metadata: bool | str = False
    """PEP 658: False (none), True (served, no hash given) or the metadata file's sha256."""
    yanked: bool | str = False
    requires_python: str | None = None


@dataclass(frozen=True)
class UpstreamPage:
    name: str
    files: Mapping[str, UpstreamFile]
    """By file name."""
    withheld: Mapping[str, str]
    """File name -> why the upstream's entry for it cannot be used."""
    status: str = "active"
    status_reason: str | None = None


def page_to_json(page: UpstreamPage) -> dict:
    """A parsed page as JSON, to keep on disk (`page_from_json` reads it back)."""
    return {
        "name": page.name,
        "files": [asdict(f) for f in page.files.values()],
        "withheld": dict(page.withheld),
        "status": page.status,
        "status_reason": page.status_reason,
    }


def page_from_json(data: dict) -> UpstreamPage:
    files = {entry["filename"]: UpstreamFile(**entry) for entry in data["files"]}
    return UpstreamPage(data["name"], files, data["withheld"], data["status"], data["status_reason"])


class UnreadablePage(ValueError):
    """The page as a whole cannot be read (not JSON, not HTML, a wrong API version)."""


def parse_upstream_page(body: bytes, content_type: str, url: str) -> UpstreamPage:
    """Parse the upstream's answer for a project page fetched from `url`."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_V1 or media == "application/json":
        return _parse_json(body, url)
    if media in ("text/html", "application/vnd.pypi.simple.v1+html", ""):
        return _parse_html(body, url)
    raise UnreadablePage(f"the upstream answered {media!r}, not a simple-repository page")


def _parse_json(body: bytes, url: str) -> UpstreamPage:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise UnreadablePage(f"the upstream's JSON page is malformed ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise UnreadablePage("the upstream's JSON page has no 'files' list")
    version = str((data.get("meta") or {}).get("api-version", "1.0")) if isinstance(data.get("meta"), dict) else "1.0"
    if not version.startswith("1."):
        raise UnreadablePage(f"the upstream speaks simple API {version!r}; Airlock reads 1.x")
    files: dict[str, UpstreamFile] = {}
    withheld: dict[str, str] = {}
    for item in data["files"]:
        if not isinstance(item, dict) or not isinstance(item.get("filename"), str):
            continue
        filename = item["filename"]
        try:
            files[filename] = _file_from_json(item, url)
        except ValueError as exc:
            withheld[str(filename)[:300]] = str(exc)
    status, reason = _status(data.get("project-status"))
    return UpstreamPage(canonicalize_name(str(data.get("name", ""))), files, withheld, status, reason)


def _file_from_json(item: dict[str, Any], page_url: str) -> UpstreamFile:
    filename = _checked_filename(item["filename"])
    hashes = item.get("hashes")
    if not isinstance(hashes, dict):
        raise ValueError("its 'hashes' is not a mapping")
    metadata = item.get("core-metadata", item.get("dist-info-metadata", False))
    return UpstreamFile(
        filename=filename,
        url=_absolute(page_url, item.get("url")),
        sha256=_checked_hashes(hashes),
        size=_checked_size(item.get("size")),
        upload_time=_checked_time(item.get("upload-time")),
        metadata=_checked_metadata(metadata),
        yanked=_checked_yanked(item.get("yanked", False)),
        requires_python=_checked_text(item.get("requires-python"), "requires-python"),
    )


class _AnchorCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], list[str]]] = []
        self.meta: dict[str, str] = {}
        self.base: str | None = None
        self._text: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "a":
            self._text = []
            self.anchors.append((found, self._text))
        elif tag == "meta" and found.get("name"):
            self.meta.setdefault(str(found["name"]), str(found.get("content") or ""))
        elif tag == "base" and found.get("href") and self.base is None:
            self.base = found["href"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def _parse_html(body: bytes, url: str) -> UpstreamPage:
    collector = _AnchorCollector()
    try:
        collector.feed(body.decode("utf-8", errors="replace"))
        collector.close()
    except (AssertionError, ValueError) as exc:  # html.parser raises these on hopeless input
        raise UnreadablePage(f"the upstream's HTML page is malformed ({exc})") from None
    base = urljoin(url, collector.base) if collector.base else url
    files: dict[str, UpstreamFile] = {}
    withheld: dict[str, str] = {}
    for attributes, text in collector.anchors:
        href = attributes.get("href")
        if not href:
            continue
        location, _, fragment = href.partition("#")
        filename = unquote(urlsplit(location).path.rsplit("/", 1)[-1]) or "".join(text).strip()
        try:
            name, _, digest = fragment.partition("=")
            files[filename] = UpstreamFile(
                filename=_checked_filename(filename),
                url=_absolute(base, location),
                sha256=_checked_hashes({name: digest} if fragment else {}),
                metadata=_html_metadata(attributes),
                yanked=_checked_yanked(attributes["data-yanked"] or True) if "data-yanked" in attributes else False,
                requires_python=_checked_text(attributes.get("data-requires-python"), "data-requires-python"),
            )
        except ValueError as exc:
            withheld[filename[:300]] = str(exc)
    status, reason = _status(
        {
            "status": collector.meta.get("pypi:project-status", "active"),
            "reason": collector.meta.get("pypi:project-status-reason"),
        }
    )
    return UpstreamPage(canonicalize_name(url.rstrip("/").rsplit("/", 1)[-1]), files, withheld, status, reason)


def _html_metadata(attributes: Mapping[str, str | None]) -> bool | str:
    value = attributes.get("data-core-metadata", attributes.get("data-dist-info-metadata"))
    if value is None:
        return False
    if value in ("", "true"):
        return True
    name, _, digest = value.partition("=")
    return _checked_metadata({name: digest})


def _checked_filename(value: Any) -> str:
    if not isinstance(value, str) or not _FILENAME.match(value):
        raise ValueError("its file name is not a plain file name")
    return value


def _checked_hashes(hashes: Mapping[str, Any]) -> str | None:
    """The sha256 (the hash Airlock serves); every known hash given must be hex of its length."""
    for name, value in hashes.items():
        pattern = _HEX.get(str(name).lower())
        if pattern is not None and not (isinstance(value, str) and pattern.match(value.lower())):
            raise ValueError(f"its {name} hash is not a hex digest")
    value = hashes.get("sha256")
    return value.lower() if isinstance(value, str) else None


def _checked_metadata(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        if not value:
            return True
        digest = _checked_hashes(value)
        return digest if digest is not None else True
    raise ValueError("its core-metadata is neither true/false nor hashes")


def _checked_size(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_FILE_SIZE:
        raise ValueError(f"its size {value!r} is not a byte count")
    return value


def _checked_time(value: Any) -> str | None:
    """PEP 700: ISO 8601 `yyyy-mm-ddThh:mm:ss.ffffffZ`; other offsets are converted to UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"its upload-time {value!r} is not ISO 8601")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"its upload-time {value[:40]!r} is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise ValueError(f"its upload-time {value[:40]!r} has no time zone")
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _checked_yanked(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value[:1000] or True
    raise ValueError("its yanked value is neither true/false nor a reason")


def _checked_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 1000:
        raise ValueError(f"its {what} is not a short text")
    return value


def _absolute(page_url: str, href: Any) -> str:
    if not isinstance(href, str) or not href:
        raise ValueError("it has no URL")
    found = urljoin(page_url, href.split("#", 1)[0])
    if urlsplit(found).scheme not in ("http", "https"):
        raise ValueError("its URL is not http(s)")
    return found


def _status(value: Any) -> tuple[str, str | None]:
    if not isinstance(value, dict):
        return "active", None
    status = str(value.get("status") or "active").lower()
    reason = value.get("reason")
    return (status if status in _STATUSES else "active"), (str(reason)[:1000] if reason else None)


def page_from_upstream(upstream: UpstreamPage) -> ProjectPage | None:
    """The page as devpi will list it, from the upstream's own: devpi keeps a file under
    `+f/{sha256[:3]}/{sha256[3:16]}/{name}`. None when a file has no sha256 (only devpi knows its path)."""
    links = []
    for facts in upstream.files.values():
        if facts.sha256 is None:
            return None
        links.append(
            FileLink(
                filename=facts.filename,
                relpath=f"{facts.sha256[:3]}/{facts.sha256[3:16]}/{facts.filename}",
                sha256=facts.sha256,
                requires_python=facts.requires_python,
                yanked=facts.yanked,
            )
        )
    return ProjectPage(upstream.name, tuple(links))


def with_upstream_facts(
    page: ProjectPage,
    upstream: UpstreamPage | None,
    *,
    extract_metadata: bool,
    metadata_hashes: Mapping[str, str],
    distrusted: frozenset[str] = frozenset(),
) -> ProjectPage:
    """devpi's links with what the upstream says of each file merged in.

    `upstream` None: the upstream's page is not known (unreachable, never fetched); the links stay as
    devpi gives them, without PEP 700 fields. Metadata is advertised where Airlock will serve it: the
    upstream serves it (with the upstream's hash when it gives one), or `extract_metadata` (Airlock
    reads it from the wheel). `metadata_hashes`: hashes of metadata Airlock already holds, by relpath;
    `distrusted`: relpaths whose upstream metadata did not match its advertised hash (none is
    advertised for them again: clients read the wheel instead).
    """
    if upstream is not None and upstream.status == "quarantined":
        reason = f"the upstream index quarantines {page.name}" + (
            f": {upstream.status_reason}" if upstream.status_reason else ""
        )
        return ProjectPage(
            page.name,
            (),
            withheld=tuple((f.filename, reason) for f in page.files),
            status="quarantined",
            status_reason=reason,
        )
    links: list[FileLink] = []
    withheld: list[tuple[str, str]] = []
    for link in page.files:
        facts = upstream.files.get(link.filename) if upstream is not None else None
        if upstream is not None and link.filename in upstream.withheld:
            withheld.append((link.filename, f"the upstream's entry is unusable: {upstream.withheld[link.filename]}"))
            continue
        if facts is not None and facts.sha256 and link.sha256 and facts.sha256 != link.sha256:
            withheld.append((link.filename, "the upstream's page and devpi's copy give different sha256 hashes"))
            continue
        links.append(
            FileLink(
                filename=link.filename,
                relpath=link.relpath,
                sha256=link.sha256,
                requires_python=facts.requires_python if facts is not None else link.requires_python,
                yanked=facts.yanked if facts is not None else link.yanked,
                core_metadata=_advertised_metadata(link, facts, extract_metadata, metadata_hashes, distrusted),
                size=facts.size if facts is not None else None,
                upload_time=facts.upload_time if facts is not None else None,
                upstream_url=facts.url if facts is not None else None,
            )
        )
    if upstream is not None:  # entries the upstream lists that Airlock cannot use, on devpi's page or not
        named = {filename for filename, _ in withheld}
        withheld += [
            (name, f"the upstream's entry is unusable: {why}")
            for name, why in upstream.withheld.items()
            if name not in named
        ]
    return ProjectPage(page.name, tuple(links), withheld=tuple(withheld))


def _advertised_metadata(
    link: FileLink, facts: UpstreamFile | None, extract: bool, known: Mapping[str, str], distrusted: frozenset[str]
) -> bool | str:
    if not link.filename.endswith(".whl") or link.relpath in distrusted:
        return False
    if facts is not None and facts.metadata:
        return facts.metadata
    if extract:
        return known.get(link.relpath, True)
    return False
