"""Nobody without a token can make the server hold, read or write much: long names are refused
before they are parsed or logged, bodies are not read before the caller is known, and refused
junk becomes a few summary records instead of one hash-chained record each."""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from testkit.worlds import last_audit_seq

LONG = "x" * 300


@pytest.mark.parametrize(
    "path",
    [
        f"/pypi/prod/files/alpha/{LONG}-1.0-py3-none-any.whl",
        f"/pypi/prod/simple/{LONG}/",
        f"/conda/prod/conda-forge/noarch/{LONG}-1.0-0.conda",
        f"/v2/prod/mar/{LONG}/manifests/latest",
        f"/api/v1/exceptions/{LONG}",
    ],
    ids=["pypi-file", "pypi-page", "conda-file", "registry", "api"],
)
def test_names_longer_than_any_real_one_are_refused_unparsed_and_unlogged(pypi_world, path):
    logged_before = pypi_world.airlock.log.stat().st_size
    response = httpx.get(pypi_world.url + path)
    assert response.status_code == 400
    assert "a path segment is over 255 bytes" in response.text
    time.sleep(0.3)  # the access line is written after the answer
    with open(pypi_world.airlock.log, "rb") as log:
        log.seek(logged_before)
        assert LONG.encode() not in log.read()


def _raw_post(url: str, path: str, declared: int, token: str | None = None) -> bytes:
    """Headers declaring `declared` bytes and one byte of body: an answer that needs the body never comes."""
    parts = urlsplit(url)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    with socket.create_connection((parts.hostname, parts.port), timeout=15) as connection:
        connection.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n{auth}"
            f"Content-Length: {declared}\r\n\r\n{{".encode()
        )
        return connection.recv(65536)


@pytest.mark.parametrize("path", ["/api/v1/gate/decisions", "/api/v1/exceptions", "/api/v1/tokens"])
def test_a_body_without_a_valid_token_is_refused_before_it_is_read(api_world, path):
    for token in (None, "alk_000000000000_" + "y" * 43):
        answer = _raw_post(api_world.url, path, 30 << 20, token)
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_the_large_body_limit_is_only_for_the_gates_token(api_world):
    scientist = _raw_post(api_world.url, "/api/v1/gate/decisions", 100_000, api_world.token("data-scientist"))
    assert scientist.startswith(b"HTTP/1.1 413"), scientist[:200]
    body = b"[" + b"0," * 60_000 + b"0]"  # over the small limit, far under the gate's
    gate = httpx.post(
        f"{api_world.url}/api/v1/gate/decisions",
        content=body,
        headers={"Authorization": f"Bearer {api_world.token('cicd-process')}", "Content-Type": "application/json"},
    )
    assert gate.status_code == 422  # read and judged: not a decision


def _refused_metric(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    found = re.search(r'^airlock_unauthenticated_denials_total\{reason="invalid"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_junk_requests_become_a_few_summary_records(api_world):
    time.sleep(5.5)  # let earlier refusals' windows close and be written
    before, counted = last_audit_seq(api_world.database_url), _refused_metric(api_world.url)
    with httpx.Client(base_url=api_world.url) as client:
        for n in range(1000):
            token = f"alk_{n:012x}_" + "z" * 43
            assert client.get("/api/v1/exceptions", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert _refused_metric(api_world.url) - counted == 1000
    governance = api_world.token("data-governance")
    deadline, summaries = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        page = api_world.call(
            "GET", f"/api/v1/audit?action=access.denied.unauthenticated&after_seq={before}", governance
        ).json()
        summaries = [record["details"] for record in page]
        if sum(summary["count"] for summary in summaries) >= 1000:
            break
        time.sleep(0.5)
    assert sum(summary["count"] for summary in summaries) == 1000
    assert all(summary["source"] == "127.0.0.1" for summary in summaries)
    assert "invalid token: unknown token 000000000000" in summaries[0]["reasons"]
    assert last_audit_seq(api_world.database_url) - before <= 5
