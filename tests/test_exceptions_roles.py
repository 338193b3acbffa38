"""Every role against every API route, cell by cell, as DESIGN.md's role table says."""

from __future__ import annotations

import time

import pytest

ROLES = [
    "data-scientist",
    "ml-engineer",
    "data-analyst",
    "model-tester",
    "project-lead",
    "product-owner",
    "data-governance",
    "platform-support",
    "business-stakeholder",
    "end-user",
    "cicd-process",
    "monitoring-process",
    "workspace",
]
REQUESTERS = {"data-scientist", "ml-engineer", "data-analyst", "model-tester", "project-lead", "product-owner"}
READERS = REQUESTERS | {"data-governance", "platform-support", "business-stakeholder", "end-user"}
DECIDERS = {"project-lead", "product-owner", "data-governance"}
# The table, written out independently of mirror/auth/roles.py: route -> roles that may use it.
ALLOWED = {
    "create": REQUESTERS,
    "list": READERS,
    "get": READERS,
    "approve": DECIDERS,
    "reject": DECIDERS,
    "revoke": DECIDERS | {"platform-support"},
    "allowlists": set(ROLES) - {"monitoring-process", "workspace"},
    "audit": {"project-lead", "product-owner", "data-governance", "platform-support"},
    "gate": {"cicd-process"},
    "tokens": {"platform-support"},
}
REQUEST = {
    "ecosystem": "pypi",
    "package": "delta",
    "versions": ">=0.1",
    "environments": ["prod"],
    "project": "churn-model",
    "justification": "needed to parse the delta lake exports of the churn model",
}


def new_request(world, body=REQUEST) -> int:
    response = world.call("POST", "/api/v1/exceptions", world.token("data-scientist", "alice"), body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def approved_request(world) -> int:
    request_id = new_request(world)
    response = world.call(
        "POST", f"/api/v1/exceptions/{request_id}/approve", world.token("data-governance", "gina"), {"comment": "ok"}
    )
    assert response.status_code == 200, response.text
    return request_id


def attempt(world, route: str, token: str | None):
    if route == "create":
        return world.call("POST", "/api/v1/exceptions", token, REQUEST)
    if route == "list":
        return world.call("GET", "/api/v1/exceptions", token)
    if route == "get":
        return world.call("GET", f"/api/v1/exceptions/{new_request(world)}", token)
    if route in ("approve", "reject"):
        return world.call("POST", f"/api/v1/exceptions/{new_request(world)}/{route}", token, {"comment": "matrix"})
    if route == "revoke":
        return world.call("POST", f"/api/v1/exceptions/{approved_request(world)}/revoke", token, {"comment": "matrix"})
    if route == "allowlists":
        return world.call("GET", "/api/v1/allowlists/pypi/prod", token)
    if route == "audit":
        return world.call("GET", "/api/v1/audit?limit=5", token)
    if route == "gate":
        return world.call(
            "POST",
            "/api/v1/gate/decisions",
            token,
            {"image": "registry.local/churn:1", "environment": "prod", "decision": "pass", "findings": [], "ci": {}},
        )
    if route == "tokens":
        return world.call("GET", "/api/v1/tokens", token)
    raise AssertionError(route)


@pytest.mark.parametrize("route", list(ALLOWED))
def test_role_route_matrix(api_world, route):
    cells = {}
    for role in ROLES:
        response = attempt(api_world, route, api_world.token(role))
        cells[role] = response.status_code
    expected = {role: ("allowed" if role in ALLOWED[route] else 403) for role in ROLES}
    actual = {role: ("allowed" if code in (200, 201) else code) for role, code in cells.items()}
    assert actual == expected
    assert attempt(api_world, route, None).status_code == 401


def test_denied_attempts_are_audited_and_explained(api_world):
    response = attempt(api_world, "tokens", api_world.token("data-scientist"))
    assert response.json() == {"detail": "role data-scientist may not manage tokens"}
    unauthenticated = api_world.call("GET", "/api/v1/exceptions", "alk_000000000000_" + "x" * 43)
    assert unauthenticated.status_code == 401 and unauthenticated.headers["www-authenticate"] == "Bearer"
    assert unauthenticated.json()["detail"] == "invalid token: unknown token 000000000000"
    audit = api_world.call(
        "GET", "/api/v1/audit?action=access.denied&limit=1000", api_world.token("data-governance")
    ).json()
    reasons = [(r["actor"], r["details"]["reason"]) for r in audit]
    assert ("data-scientist-user", "role data-scientist may not manage tokens") in reasons
    # A caller without a valid token is counted and summarised per source and window (5 s here).
    deadline, summarised = time.monotonic() + 30, []
    while time.monotonic() < deadline and not summarised:
        summaries = api_world.call(
            "GET", "/api/v1/audit?action=access.denied.unauthenticated&limit=1000", api_world.token("data-governance")
        ).json()
        summarised = [r for r in summaries if "invalid token: unknown token 000000000000" in r["details"]["reasons"]]
        time.sleep(0.5)
    assert summarised and summarised[-1]["actor"] == "anonymous"


def test_nobody_reads_or_decides_another_projects_requests(api_world):
    request_id = new_request(api_world)
    outsider = api_world.token("data-scientist", "oscar", ("fraud-model",))
    assert api_world.call("GET", f"/api/v1/exceptions/{request_id}", outsider).status_code == 403
    assert api_world.call("GET", "/api/v1/exceptions?project=churn-model", outsider).status_code == 403
    mine = api_world.call("GET", "/api/v1/exceptions", outsider).json()
    assert all(item["project"] == "fraud-model" for item in mine)
    assert api_world.call("POST", "/api/v1/exceptions", outsider, REQUEST).status_code == 403
    other_lead = api_world.token("project-lead", "olga", ("fraud-model",))
    refused = api_world.call("POST", f"/api/v1/exceptions/{request_id}/approve", other_lead, {"comment": "not mine"})
    assert refused.status_code == 403
    assert refused.json()["detail"] == "role project-lead may not approve or reject requests for project churn-model"
    lead_audit = api_world.call(
        "GET", "/api/v1/audit?limit=1000", api_world.token("project-lead", "olga", ("fraud-model",))
    ).json()
    assert all(record["project"] == "fraud-model" for record in lead_audit)
