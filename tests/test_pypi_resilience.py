"""When parts fail: upstream down, devpi killed, Airlock stopped. Nothing unvetted, nothing orphaned."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from testkit.worlds import fresh_venv, installed, pip, start_pypi_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    # No reuse window in Airlock and a 1 s one in devpi, so every request really asks upstream.
    world = start_pypi_world(
        tmp_path_factory.mktemp("resilience"), {"AIRLOCK_PYPI_PAGE_TTL": "0", "AIRLOCK_DEVPI_CACHE_EXPIRY": "1"}
    )
    yield world
    world.stop()


def devpi_part(world) -> dict:
    return httpx.get(f"{world.url}/readyz").json()["parts"]["devpi"]


def test_upstream_down_serves_cached_files_and_503_for_the_rest(world, tmp_path):
    first = fresh_venv(tmp_path / "first")
    assert pip(["--python", str(first), "install", "--index-url", world.index(), "beta"], tmp_path).returncode == 0
    world.upstream_server.stop()
    try:
        time.sleep(1.5)  # past devpi's cache expiry: it must fall back to what it cached
        second = fresh_venv(tmp_path / "second")
        result = pip(["--python", str(second), "install", "--index-url", world.index(), "beta"], tmp_path)
        assert result.returncode == 0, result.stderr
        assert installed(second) == {"alpha": "1.1", "beta": "1.0"}
        response = httpx.get(f"{world.index()}uncached/")
        assert response.status_code == 503
        assert response.headers["X-Airlock-Reason"].startswith(
            "the upstream index is unreachable (ConnectError), and uncached is not cached"
        )
        assert "try again when the upstream is reachable" in response.text
        blocked = httpx.get(f"{world.index()}delta/")
        assert blocked.status_code == 200 and "pypi:project-status" in blocked.text  # refused by policy, not 503
    finally:
        world.upstream_server.start()
    assert httpx.get(f"{world.index()}uncached/").status_code == 200


def test_a_file_many_clients_ask_for_at_once_reaches_every_one(world):
    """A CI fleet installing a new release together: devpi answers 500 to requests for a file another
    request is still storing ("Waiting for file … in event serial"); Airlock waits for it instead."""
    import asyncio
    import re

    urls = []
    for project in ("torchish", "oldpy", "epsilon", "zeta-pkg"):  # wheels no other test here fetches
        page = httpx.get(f"{world.index()}{project}/")
        urls.append(httpx.URL(f"{world.index()}{project}/").join(re.search(r'href="([^"#]+\.whl)', page.text)[1]))

    async def fetch_all() -> list[int]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
            answers = await asyncio.gather(*(client.get(url) for url in urls for _ in range(24)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(fetch_all()) == [200] * 24 * len(urls)


def test_a_crashed_devpi_is_restarted_and_reported(world):
    before = devpi_part(world)
    os.kill(before["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        part = devpi_part(world)
        if part["restarts"] == 1 and part["healthy"]:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"devpi was not restarted: {devpi_part(world)}")
    assert part["pid"] != before["pid"]
    assert httpx.get(f"{world.index()}alpha/").status_code == 200
    assert "devpi-server exited unexpectedly" in world.airlock.log.read_text()


def test_sigterm_stops_airlock_and_devpi_with_no_orphans(world):
    pid = devpi_part(world)["pid"]
    code = world.airlock.stop()
    assert code in (0, -signal.SIGTERM)
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
    assert "airlock stopped: devpi-server and every other child are down" in world.airlock.log.read_text()
