"""What a platform engineer watches: metrics per route, request ids in logs, and the optional
token on package routes and /metrics."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from testkit.worlds import fresh_venv, installed, mint_token, pip, quarantined, start_pypi_world


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            return float(match.group(2))
    return 0.0


def test_metrics_count_real_traffic_per_route_and_outcome(pypi_world):
    before = httpx.get(f"{pypi_world.url}/metrics").text
    for _ in range(3):
        assert httpx.get(f"{pypi_world.index()}beta/").status_code == 200
    for _ in range(2):
        assert quarantined(httpx.get(f"{pypi_world.index()}delta/"))
    assert httpx.get(f"{pypi_world.url}/no/such/route").status_code == 404
    after = httpx.get(f"{pypi_world.url}/metrics").text
    route = "/pypi/{env}/simple/{project}/"

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    # a quarantined page (PEP 792) is a 2xx; the policy metric counts it as blocked
    assert delta("airlock_http_requests_total", route=route, method="GET", status_class="2xx") == 5
    assert delta("airlock_http_requests_total", route="unmatched", method="GET", status_class="4xx") == 1
    assert delta("airlock_http_request_duration_seconds_count", route=route) == 5
    assert delta("airlock_policy_decisions_total", ecosystem="pypi", environment="prod", outcome="blocked") == 2
    assert delta("airlock_policy_decisions_total", ecosystem="pypi", environment="prod", outcome="allowed") >= 3
    assert metric(after, "airlock_child_up", child="devpi") == 1.0
    assert 'airlock_exception_requests{state="pending"}' in after


def test_every_response_carries_a_request_id_that_the_log_repeats(pypi_world):
    response = httpx.get(f"{pypi_world.index()}delta/", headers={"X-Request-ID": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    generated = httpx.get(f"{pypi_world.index()}delta/").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    lines = [json.loads(line) for line in pypi_world.airlock.log.read_text().splitlines() if line.startswith("{")]
    refused = [l for l in lines if l.get("request_id") == "trace-42"]
    assert {l["logger"] for l in refused} >= {"airlock.refusals", "airlock.access"}
    access = next(l for l in refused if l["logger"] == "airlock.access")
    assert access["status"] == 200 and access["route"] == "/pypi/{env}/simple/{project}/" and access["duration_ms"] >= 0


@pytest.fixture(scope="module")
def locked_world(tmp_path_factory):
    world = start_pypi_world(tmp_path_factory.mktemp("locked"), {"AIRLOCK_REQUIRE_TOKEN": "true"})
    yield world
    world.stop()


def token(world, role):
    return mint_token(f"sqlite:///{world.airlock.workdir / 'data' / 'airlock.db'}", role)


def test_require_token_guards_package_routes_and_metrics(locked_world, tmp_path):
    refused = httpx.get(locked_world.index() + "beta/")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="airlock"'
    workspace = token(locked_world, "workspace")
    python = fresh_venv(tmp_path / "venv")
    port = locked_world.airlock.port
    without = pip(
        ["--python", str(python), "install", "--index-url", f"http://127.0.0.1:{port}/pypi/prod/simple/", "beta"],
        tmp_path,
    )
    assert without.returncode != 0
    with_token = pip(
        [
            "--python",
            str(python),
            "install",
            "--index-url",
            f"http://ws:{workspace}@127.0.0.1:{port}/pypi/prod/simple/",
            "beta",
        ],
        tmp_path,
    )
    assert with_token.returncode == 0, with_token.stderr
    assert installed(python) == {"alpha": "1.1", "beta": "1.0"}
    assert httpx.get(f"{locked_world.url}/metrics").status_code == 401
    assert (
        httpx.get(
            f"{locked_world.url}/metrics",
            headers={"Authorization": f"Bearer {token(locked_world, 'monitoring-process')}"},
        ).status_code
        == 200
    )
    forbidden = httpx.get(f"{locked_world.url}/metrics", headers={"Authorization": f"Bearer {workspace}"})
    assert forbidden.status_code == 403 and forbidden.json()["detail"] == "role workspace may not read metrics"
    cicd = httpx.get(locked_world.index() + "beta/", auth=("ci", token(locked_world, "cicd-process")))
    assert cicd.status_code == 403
    assert httpx.get(f"{locked_world.url}/healthz").status_code == 200
