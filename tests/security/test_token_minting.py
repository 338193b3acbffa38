"""Separation of duties cannot be sidestepped by minting: a token that can approve requests (or mint
tokens) comes only from the server's operator, lifetimes are capped, every mint names its minter."""

from __future__ import annotations

import subprocess
import sys

import pytest


def mint(world, role: str, user: str = "mallory-2", expires_in: str = "30d"):
    body = {"user": user, "role": role, "projects": ["churn-model"], "expires_in": expires_in}
    return world.call("POST", "/api/v1/tokens", world.token("platform-support", "pat"), body)


@pytest.mark.parametrize("role", ["data-governance", "project-lead", "product-owner", "platform-support"])
def test_the_api_does_not_mint_roles_that_decide_or_mint(api_world, role):
    response = mint(api_world, role)
    assert response.status_code == 403, response.text
    assert f"airlock token create --role {role}" in response.json()["detail"]
    audit = api_world.call(
        "GET", "/api/v1/audit?action=access.denied&actor=pat&limit=1000", api_world.token("data-governance")
    ).json()
    assert any(record["details"]["attempted"] == "token.create" for record in audit)


@pytest.mark.parametrize("expires_in", ["99999d", "366d", "8785h", "100000000000000000000d"])
def test_lifetimes_are_capped(api_world, expires_in):
    response = mint(api_world, "data-scientist", expires_in=expires_in)
    assert response.status_code == 422, response.text
    assert "AIRLOCK_TOKEN_MAX_DAYS" in response.text


def test_every_mint_is_audited_with_its_minter(api_world):
    response = mint(api_world, "ml-engineer", "newcomer", "365d")
    assert response.status_code == 201, response.text
    audit = api_world.call(
        "GET", "/api/v1/audit?action=token.created&actor=pat&limit=1000", api_world.token("data-governance")
    ).json()
    [record] = [r for r in audit if r["subject"] == f"token {response.json()['id']}"]
    assert record["details"]["minted_by"] == "pat" and record["details"]["via"] == "api"
    assert record["details"]["role"] == "ml-engineer"


def _cli(world, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mirror", "token", "create", *args],
        capture_output=True,
        text=True,
        env={"AIRLOCK_DATABASE_URL": world.database_url, "PATH": "/usr/bin:/bin", "AIRLOCK_TOKEN_MAX_DAYS": "30"},
        timeout=60,
    )


def test_the_operator_mints_deciders_on_the_server_within_the_cap(api_world):
    made = _cli(api_world, "--user", "gina-2", "--role", "data-governance", "--expires-in", "30d")
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().startswith("alk_")
    refused = _cli(api_world, "--user", "gina-3", "--role", "data-governance", "--expires-in", "31d")
    assert refused.returncode == 2
    assert "a token lives between 1h and 30d (AIRLOCK_TOKEN_MAX_DAYS); asked for 31d" in refused.stderr
