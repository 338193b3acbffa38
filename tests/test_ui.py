"""The web UI in a real browser (headless Chromium, driven by Playwright): a data scientist finds a
blocked package and asks for it, a project lead approves it, pip then installs it through Airlock;
the requester cannot approve their own request; XSS and CSRF attempts fail; a role without a view
is told so. Every page is screenshotted at 1280 and 390 px (tests/artifacts/ui/)."""

from __future__ import annotations

import re
import time

import pytest
from playwright import sync_api as playwright

from testkit.worlds import fresh_venv, installed, pip
from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "ui"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
JUSTIFICATION = "rho parses the churn model's event exports; nothing allowlisted reads that format"
pytestmark = pytest.mark.parametrize("api_world", ["sqlite"], indirect=True)


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        yield chromium
        chromium.close()


def signed_in(browser, api_world, token: str, width: str = "desktop"):
    context = browser.new_context(viewport=dict(zip(("width", "height"), WIDTHS[width], strict=True)))
    tab = context.new_page()
    tab.on("dialog", lambda dialog: pytest.fail(f"a script ran: {dialog.message}"))
    tab.goto(f"{api_world.url}/ui/")
    assert tab.url.endswith("/ui/sign-in")
    tab.fill("#token", token)
    tab.click("button[type=submit]")
    tab.wait_for_url(re.compile(r"/ui/$"))
    assert token not in tab.url
    return context, tab


def shoot(tab, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width, (w, h) in WIDTHS.items():
        tab.set_viewport_size({"width": w, "height": h})
        tab.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    tab.set_viewport_size({"width": 1280, "height": 900})


def test_find_ask_approve_install(browser, api_world, tmp_path):
    alice = api_world.token("data-scientist", "alice-ui")
    lena = api_world.token("project-lead", "lena-ui")
    context, tab = signed_in(browser, api_world, alice)
    cookie = next(c for c in context.cookies() if c["name"] == "airlock_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    answer = tab.goto(f"{api_world.url}/ui/?ecosystem=pypi&q=rho")
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    row = tab.locator("table.answers tbody tr").filter(has=tab.get_by_role("cell", name="prod", exact=True))
    assert "blocked: rho is not on the prod allowlist" in row.inner_text() and "POST /api" not in row.inner_text()
    shoot(tab, "search")
    row.get_by_role("link", name="Ask for it").click()
    tab.wait_for_selector("#prechecks")
    checks = tab.locator("ul.checks").inner_text()
    assert "upstream" in checks and "typosquat" in checks and "licence" in checks
    tab.fill("#justification", JUSTIFICATION + " <script>alert('xss')</script>")
    shoot(tab, "request-new")
    tab.get_by_role("button", name="Submit the request").click()
    tab.wait_for_url(re.compile(r"/ui/requests/\d+$"))
    request_id = int(tab.url.rsplit("/", 1)[1])
    assert "pending" in tab.locator("h1").inner_text()
    assert "<script>alert('xss')</script>" in tab.locator(".facts .text").inner_text()  # shown as text
    assert tab.locator("button.approve").count() == 0
    assert "another person with an approving role decides" in tab.content()
    shoot(tab, "request")

    # Her role does not decide, even by posting the form herself; a forged form is refused.
    csrf = tab.locator("input[name=csrf]").first.get_attribute("value")
    own = tab.request.post(
        f"{api_world.url}/ui/requests/{request_id}/decide",
        form={"decision": "approve", "comment": "mine", "csrf": csrf},
    )
    assert own.status == 403 and "role data-scientist may not approve or reject requests" in own.text()
    forged = tab.request.post(
        f"{api_world.url}/ui/requests/{request_id}/decide", form={"decision": "approve", "comment": "forged"}
    )
    assert forged.status == 403 and "security token is missing or stale" in forged.text()
    audit = tab.goto(f"{api_world.url}/ui/audit")
    assert audit.status == 403 and "role data-scientist may not read the audit log" in tab.content()
    shoot(tab, "refused")
    tab.goto(f"{api_world.url}/ui/requests")
    shoot(tab, "my-requests")
    context.close()

    lenas = api_world.call(
        "POST",
        "/api/v1/exceptions",
        lena,
        {
            "ecosystem": "pypi",
            "package": "rho",
            "versions": "==1.0",
            "environments": ["prod"],
            "project": "churn-model",
            "justification": "the lead wants rho pinned in prod to compare exports",
        },
    )
    assert lenas.status_code == 201, lenas.text
    context, tab = signed_in(browser, api_world, lena)
    tab.goto(f"{api_world.url}/ui/queue")
    mine = tab.locator("article.card", has_text=f"#{lenas.json()['id']} rho")
    assert mine.locator("button.approve").count() == 0 and "Yours: another approver decides" in mine.inner_text()
    csrf = tab.locator("input[name=csrf]").first.get_attribute("value")
    own = tab.request.post(
        f"{api_world.url}/ui/requests/{lenas.json()['id']}/decide",
        form={"decision": "approve", "comment": "mine", "csrf": csrf},
    )
    assert own.status == 403 and "separation of duties: you requested this exception" in own.text()
    card = tab.locator("article.card", has_text=f"#{request_id} rho")
    assert "Approval adds rho (every version) to prod" in card.inner_text()
    shoot(tab, "queue")
    card.locator("input[name=comment]").fill("reviewed: small parser, MIT")
    card.get_by_role("button", name="Approve").click()
    tab.wait_for_url(re.compile(r"/ui/queue$"))
    assert tab.locator("article.card", has_text=f"#{request_id} rho").count() == 0
    tab.goto(f"{api_world.url}/ui/requests/{request_id}")
    assert "approved" in tab.locator("h1").inner_text()
    tab.goto(f"{api_world.url}/ui/audit?subject=exception%20{request_id}")
    trail = tab.locator("table tbody").inner_text()
    assert "exception.requested" in trail and "exception.approved" in trail
    shoot(tab, "audit")
    tab.goto(f"{api_world.url}/ui/gate")
    shoot(tab, "gate")
    context.close()

    python = fresh_venv(tmp_path / "venv")
    deadline = time.monotonic() + 10
    while True:
        result = pip(["--python", str(python), "install", "--index-url", api_world.pypi.index(), "rho"], tmp_path)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert result.returncode == 0, result.stderr
    assert installed(python)["rho"] == "1.0"


def test_sign_in_refuses_a_bad_token_and_a_cross_site_form(browser, api_world):
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(f"{api_world.url}/ui/sign-in")
    shoot(tab, "sign-in")
    tab.fill("#token", "alk_000000000000_" + "q" * 43)
    tab.click("button[type=submit]")
    assert "invalid token: unknown token 000000000000" in tab.locator(".notice").inner_text()
    forged = context.request.post(
        f"{api_world.url}/ui/sign-in", form={"token": api_world.token("data-scientist", "alice-ui"), "csrf": "guess"}
    )
    assert forged.status == 403 and not [c for c in context.cookies() if c["name"] == "airlock_session"]
    context.close()
