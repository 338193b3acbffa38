"""A data scientist asks; someone else decides; pip sees it within 2 s; it ends by revocation or
expiry; every step is audited and notified."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from datetime import UTC

import httpx
import pytest

from testkit.worlds import fresh_venv, installed, pip, quarantined

JSON_V1 = "application/vnd.pypi.simple.v1+json"


def ask(world, token, **overrides):
    body = {
        "ecosystem": "pypi",
        "package": "delta",
        "versions": ">=1.0",
        "environments": ["prod"],
        "project": "churn-model",
        "justification": "needed to parse the delta lake exports of the churn model",
        **overrides,
    }
    return world.call("POST", "/api/v1/exceptions", token, body)


def wait_until(check, seconds=2.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


def page(world, project, env="prod"):
    return httpx.get(f"{world.url}/pypi/{env}/simple/{project}/", headers={"Accept": JSON_V1})


def test_request_approve_install_revoke(api_world, tmp_path):
    alice, lead = api_world.token("data-scientist", "alice"), api_world.token("project-lead", "lena")
    created = ask(api_world, alice, package="kappa")
    assert created.status_code == 201, created.text
    request = created.json()
    assert request["status"] == "pending" and request["requested_by"] == "alice" and request["audit_id"]
    checks = {c["name"]: c for c in request["prechecks"]}
    assert checks["upstream"]["status"] == "pass" and "newest 1.0" in checks["upstream"]["detail"]
    assert checks["licence"] == {"name": "licence", "status": "pass", "detail": "kappa 1.0: MIT"}
    assert checks["vulnerabilities"]["status"] == "pass"
    assert checks["typosquat"]["status"] == "pass"
    assert quarantined(page(api_world, "kappa"))

    approved = api_world.call(
        "POST", f"/api/v1/exceptions/{request['id']}/approve", lead, {"comment": "reviewed, fine"}
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["decided_by"] == "lena"
    elapsed = wait_until(lambda: page(api_world, "kappa").status_code == 200)
    python = fresh_venv(tmp_path / "venv")
    result = pip(
        ["--python", str(python), "install", "--index-url", f"{api_world.url}/pypi/prod/simple/", "kappa"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert installed(python) == {"kappa": "1.0"}
    assert elapsed < 2.0

    effective = api_world.call("GET", "/api/v1/allowlists/pypi/prod", alice).json()
    assert {"name": "kappa", "rule": f"exception {request['id']}"}.items() <= next(
        r for r in effective["rules"] if r["name"] == "kappa"
    ).items()

    revoked = api_world.call(
        "POST", f"/api/v1/exceptions/{request['id']}/revoke", lead, {"comment": "no longer needed"}
    )
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    wait_until(lambda: quarantined(page(api_world, "kappa")))

    trail = api_world.call(
        "GET", f"/api/v1/audit?subject=exception%20{request['id']}", api_world.token("data-governance")
    ).json()
    assert [r["action"] for r in trail] == ["exception.requested", "exception.approved", "exception.revoked"]
    assert trail[0]["details"]["prechecks"] == request["prechecks"]
    assert [r["actor"] for r in trail] == ["alice", "lena", "lena"]
    assert trail[1]["details"]["comment"] == "reviewed, fine"


def test_the_requester_never_decides_their_own_request(api_world):
    lead = api_world.token("project-lead", "paula")
    request_id = ask(api_world, lead, package="nu").json()["id"]
    refused = api_world.call("POST", f"/api/v1/exceptions/{request_id}/approve", lead, {"comment": "self"})
    assert refused.status_code == 403
    assert refused.json()["detail"].startswith("separation of duties: you requested this exception")
    other = api_world.call(
        "POST",
        f"/api/v1/exceptions/{request_id}/reject",
        api_world.token("product-owner", "pete"),
        {"comment": "use beta"},
    )
    assert other.status_code == 200 and other.json()["status"] == "rejected"
    again = api_world.call(
        "POST",
        f"/api/v1/exceptions/{request_id}/approve",
        api_world.token("data-governance", "gina"),
        {"comment": "late"},
    )
    assert again.status_code == 409 and again.json()["detail"] == f"exception {request_id} is already rejected by pete"


def test_two_simultaneous_decisions_yield_one_outcome(api_world):
    for _ in range(5):
        request_id = ask(api_world, api_world.token("data-scientist", "alice"), package="mu").json()["id"]
        deciders = [
            ("approve", api_world.token("project-lead", "lena")),
            ("reject", api_world.token("data-governance", "gina")),
            ("approve", api_world.token("product-owner", "pete")),
        ]
        results: list[int] = []
        barrier = threading.Barrier(len(deciders))

        def decide(action, token):
            barrier.wait()
            results.append(
                api_world.call(
                    "POST", f"/api/v1/exceptions/{request_id}/{action}", token, {"comment": "race"}
                ).status_code
            )

        threads = [threading.Thread(target=decide, args=d) for d in deciders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == [200, 409, 409]
        trail = api_world.call(
            "GET", f"/api/v1/audit?subject=exception%20{request_id}", api_world.token("data-governance")
        ).json()
        assert len([r for r in trail if r["action"] in ("exception.approved", "exception.rejected")]) == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"versions": ">=1.0,<<2"}, "versions", "invalid PEP 440 specifier '>=1.0,<<2'"),
        (
            {"environments": ["staging"]},
            "environments",
            "unknown environment 'staging' for pypi (known: prod, preprod)",
        ),
        ({"ecosystem": "npm"}, "ecosystem", "Input should be 'pypi', 'conda' or 'containers'"),
        ({"justification": "need it"}, "justification", "String should have at least 20 characters"),
        ({"justification": "need need need need need need"}, "justification", "at least 4 different words"),
        ({"duration_days": 365}, "duration_days", "at most 120 days"),
        ({"package": "not a name!"}, "package", "invalid project name 'not a name!'"),
        ({"project": "Churn Model"}, "project", "String should match pattern"),
        ({"verisons": "==1"}, "verisons", "Extra inputs are not permitted"),
    ],
)
def test_invalid_requests_name_the_field_and_the_fix(api_world, overrides, field, message):
    response = ask(api_world, api_world.token("data-scientist", "alice"), **overrides)
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(p["loc"][-1] == field and message in p["msg"] for p in problems), problems


def test_already_allowed_is_409_citing_the_rule(api_world):
    response = ask(api_world, api_world.token("data-scientist", "alice"), package="alpha", versions="==1.1")
    assert response.status_code == 409
    assert (
        response.json()["detail"]
        == "already allowed in prod: allowed by allowlists/pypi.yaml:6 (alpha >=1.0,<2, owner ml)"
    )


def test_oversized_bodies_are_refused(api_world):
    response = ask(api_world, api_world.token("data-scientist", "alice"), justification="x " * 40_000)
    assert response.status_code == 413
    # A gate decision has its own limit (AIRLOCK_MAX_GATE_DECISION_BYTES, 64 MiB): 100 KB is accepted, 65 MiB is not.
    pipeline = api_world.token("cicd-process", "pipeline")
    decision = {
        "image": "app:1",
        "environment": "prod",
        "decision": "pass",
        "findings": [{"check": "provenance", "reason": "x" * 1000}] * 100,
    }
    assert api_world.call("POST", "/api/v1/gate/decisions", pipeline, decision).status_code == 201
    oversized = httpx.post(
        f"{api_world.url}/api/v1/gate/decisions",
        content=b" " * (65 * 2**20),
        timeout=30,
        headers={"Authorization": f"Bearer {pipeline}", "Content-Type": "application/json"},
    )
    assert oversized.status_code == 413 and oversized.json()["detail"] == f"request body over {64 * 2**20} bytes"


def test_audit_pages_stay_bounded_when_gate_decisions_are_large(api_world):
    """An ML image's decision carries thousands of findings (megabytes): a page of the audit log stops
    at ~16 MiB of details and links to the next, so 200 such records never load at once."""
    pipeline, governance = api_world.token("cicd-process", "pipeline"), api_world.token("data-governance", "gina")
    findings = [
        {"check": "vulnerabilities", "level": "warn", "reason": "below the threshold " * 25, "n": n}
        for n in range(12_000)
    ]
    subject = "registry.local/bulky:1"
    for _ in range(3):  # ~6.5 MB each
        decision = {"image": subject, "environment": "prod", "decision": "pass", "findings": findings}
        assert api_world.call("POST", "/api/v1/gate/decisions", pipeline, decision).status_code == 201
    url, pages = f"{api_world.url}/api/v1/audit?action=gate.decision&subject={subject}", []
    while url:
        page = httpx.get(url, headers={"Authorization": f"Bearer {governance}"}, timeout=60)
        assert page.status_code == 200, page.text
        pages.append([record["seq"] for record in page.json()])
        url = page.links.get("next", {}).get("url")
    assert [len(seqs) for seqs in pages] == [2, 1]
    assert pages[0][-1] < pages[1][0] and all(len(r["details"]["findings"]) == 12_000 for r in page.json())


def test_preprod_self_service_approves_clean_requests_only(api_world):
    alice = api_world.token("data-scientist", "alice")
    clean = ask(
        api_world,
        alice,
        package="omicron",
        environments=["preprod"],
        justification="trying omicron in preprod for the churn pipeline",
    )
    assert clean.status_code == 201 and clean.json()["status"] == "approved"
    assert clean.json()["decided_by"] == "airlock:self-service"
    wait_until(lambda: page(api_world, "omicron", "preprod").status_code == 200)
    assert quarantined(page(api_world, "omicron", "prod"))
    vulnerable = ask(
        api_world,
        alice,
        package="alpha",
        versions="==1.0",
        environments=["preprod"],
        justification="old alpha for reproducing last year's churn results",
    )
    body = vulnerable.json()
    assert vulnerable.status_code == 201 and body["status"] == "pending"
    vulns = next(c for c in body["prechecks"] if c["name"] == "vulnerabilities")
    assert vulns["status"] == "fail" and vulns["detail"] == (
        "CVE-2026-0001 (also GHSA-aaaa-bbbb-cccc) HIGH: alpha before 1.1 runs "
        "untrusted pickles; affects 1.0, fixed in 1.1"
    )
    squat = ask(
        api_world,
        alice,
        package="alpah",
        versions=None,
        environments=["preprod"],
        justification="this name is a typo of alpha and must be flagged",
    )
    checks = {c["name"]: c for c in squat.json()["prechecks"]}
    assert checks["typosquat"]["status"] == "warn" and "'alpha'" in checks["typosquat"]["detail"]
    assert checks["upstream"]["status"] == "fail" and squat.json()["status"] == "pending"
    api_world.call(
        "POST",
        f"/api/v1/exceptions/{clean.json()['id']}/revoke",
        api_world.token("data-governance"),
        {"comment": "cleanup"},
    )


def test_expiry_needs_no_job_and_is_audited_once(api_world):
    alice, lead = api_world.token("data-scientist", "alice"), api_world.token("project-lead", "lena")
    request_id = ask(api_world, alice, package="xi", duration_days=1).json()["id"]
    api_world.call("POST", f"/api/v1/exceptions/{request_id}/approve", lead, {"comment": "one day"})
    wait_until(lambda: page(api_world, "xi").status_code == 200)
    # A day passes: move the end into the past (the clock is the only thing faked).
    from datetime import datetime, timedelta

    from sqlalchemy import update

    from mirror.store.db import Database
    from mirror.store.models import ExceptionRequest

    database = Database(api_world.database_url)
    with database.transaction() as session:
        session.execute(
            update(ExceptionRequest)
            .where(ExceptionRequest.id == request_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    database.dispose()
    wait_until(lambda: quarantined(page(api_world, "xi")))  # enforced at once, by the allowlist itself
    # recorded by the background poller (serving a page never writes), within its interval
    wait_until(lambda: api_world.call("GET", f"/api/v1/exceptions/{request_id}", alice).json()["status"] == "expired")
    trail = api_world.call(
        "GET",
        f"/api/v1/audit?subject=exception%20{request_id}&action=exception.expired",
        api_world.token("data-governance"),
    ).json()
    assert len(trail) == 1 and trail[0]["actor"] == "airlock"
    explained = httpx.get(f"{api_world.url}/pypi/prod/simple/xi/").headers["X-Airlock-Reason"]
    assert explained.startswith(f"blocked: exception {request_id} (xi >=1.0, owner churn-model) expired on")


def test_webhooks_are_signed_and_retried_without_blocking_decisions(api_world):
    receiver = api_world.receiver
    receiver.failing = True
    started = time.monotonic()
    request_id = ask(api_world, api_world.token("data-scientist", "alice")).json()["id"]
    decided = api_world.call(
        "POST", f"/api/v1/exceptions/{request_id}/reject", api_world.token("project-lead", "lena"), {"comment": "no"}
    )
    assert decided.status_code == 200 and time.monotonic() - started < 5
    wait_until(lambda: receiver.attempts >= 2, seconds=10)
    receiver.failing = False

    def delivered(event):
        return any(r.event["data"]["id"] == request_id for r in receiver.events(event))

    # Both failed at first; each is retried on its own backoff, so either may arrive first.
    wait_until(lambda: delivered("exception.created") and delivered("exception.decided"), seconds=30)
    created = next(r for r in receiver.events("exception.created") if r.event["data"]["id"] == request_id)
    expected = "sha256=" + hmac.new(api_world.secret.encode(), created.body, hashlib.sha256).hexdigest()
    assert created.headers["X-Airlock-Signature"] == expected
    assert created.headers["X-Airlock-Event"] == "exception.created"
    assert json.loads(created.body)["data"]["status"] == "pending"
    # The event carries the audit chain's head after its record: an anchor held outside Airlock.
    [requested] = api_world.call(
        "GET",
        f"/api/v1/audit?action=exception.requested&subject=exception {request_id}",
        api_world.token("data-governance", "gina"),
    ).json()
    assert json.loads(created.body)["audit"] == {"seq": requested["seq"], "hash": requested["hash"]}
    anchored = subprocess.run(
        [sys.executable, "-m", "mirror", "audit", "verify", "--anchor", f"{requested['seq']}:{requested['hash']}"],
        capture_output=True,
        text=True,
        env={"AIRLOCK_DATABASE_URL": api_world.database_url, "PATH": "/usr/bin:/bin"},
    )
    assert anchored.returncode == 0 and "1 anchor(s) matched" in anchored.stdout, anchored.stdout + anchored.stderr


def test_audit_verify_and_export_from_the_cli(api_world):
    env = {"AIRLOCK_DATABASE_URL": api_world.database_url, "PATH": "/usr/bin:/bin"}
    verify = subprocess.run(
        [sys.executable, "-m", "mirror", "audit", "verify"], capture_output=True, text=True, env=env
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("audit log intact:")
    export = subprocess.run(
        [sys.executable, "-m", "mirror", "audit", "export", "--format", "jsonl"],
        capture_output=True,
        text=True,
        env=env,
    )
    records = [json.loads(line) for line in export.stdout.splitlines()]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(records, records[1:]))


def test_a_request_shows_its_closure_and_is_approved_with_it_in_one_decision(api_world, tmp_path):
    alice, lead = api_world.token("data-scientist", "alice"), api_world.token("project-lead", "lena")
    created = ask(api_world, alice, package="sigma")
    assert created.status_code == 201, created.text
    request = created.json()
    closure = next(c for c in request["prechecks"] if c["name"] == "closure")
    assert closure["status"] == "warn"
    assert (
        closure["detail"]
        == "approving sigma also needs tau, upsilon — not allowed in prod; approve with_closure to grant them too"
    )
    assert closure["packages"] == [
        {"package": "tau", "requirement": "tau>=1.0", "required_by": ["sigma 1.0"]},
        {"package": "upsilon", "requirement": "upsilon", "required_by": ["sigma 1.0", "tau 1.2"]},
    ]
    approved = api_world.call(
        "POST",
        f"/api/v1/exceptions/{request['id']}/approve",
        lead,
        {"comment": "with what it needs", "with_closure": True},
    )
    assert approved.status_code == 200, approved.text
    wait_until(lambda: page(api_world, "upsilon").status_code == 200 and not quarantined(page(api_world, "upsilon")))
    python = fresh_venv(tmp_path / "venv")
    result = pip(
        ["--python", str(python), "install", "--index-url", f"{api_world.url}/pypi/prod/simple/", "sigma"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert installed(python) == {"sigma": "1.0", "tau": "1.2", "upsilon": "2.0"}
    grants = [
        r
        for r in api_world.call("GET", "/api/v1/exceptions?status=approved", lead).json()
        if r["parent_id"] == request["id"]
    ]
    assert sorted((g["package"], g["versions"]) for g in grants) == [("tau", ">=1.0"), ("upsilon", None)]
    assert {g["expires_at"] for g in grants} == {approved.json()["expires_at"]} and {
        g["decided_by"] for g in grants
    } == {"lena"}
    governance = api_world.token("data-governance")
    for grant in grants:
        trail = api_world.call("GET", f"/api/v1/audit?subject=exception%20{grant['id']}", governance).json()
        assert [r["action"] for r in trail] == ["exception.approved"] and trail[0]["details"]["closure_of"] == request[
            "id"
        ]
    revoked = api_world.call("POST", f"/api/v1/exceptions/{request['id']}/revoke", lead, {"comment": "done"})
    assert revoked.status_code == 200
    wait_until(lambda: quarantined(page(api_world, "tau")) and quarantined(page(api_world, "sigma")))
