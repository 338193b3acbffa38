"""Find a package, ask for an exception, follow your requests, decide others' — the exception
workflow's rules (roles, separation of duties, pre-checks, races, audit) hold as in the API, since
these pages call the same `ExceptionRequests`."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from mirror.auth.roles import Permission
from mirror.exception_requests.prechecks import Precheck, closure_packages
from mirror.exception_requests.workflow import NewRequest
from mirror.exposure import stored_release_facts
from mirror.policy import Allowlist, Ecosystem, UnknownEnvironment
from mirror.policy.conditions import ReleaseFacts
from mirror.policy.spec import SPEC_FORMS, parse_spec
from mirror.ui.context import REFUSALS, ViewerDep, page, refusal_page

router = APIRouter(prefix="/ui", include_in_schema=False)
PAGE = 50
_BARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,200}$")


def search(allowlist: Allowlist, ecosystem: Ecosystem, query: str, data_dir) -> dict:
    """Per environment: allowed or not, by which rule, in `explain`'s words; and what to ask for."""
    name, version, build = query.strip(), None, None
    try:
        asked = parse_spec(ecosystem, query)
        name, version, build = asked.name, asked.version, asked.build
    except ValueError as exc:
        if not _BARE_NAME.match(query.strip()):
            return {"error": str(exc)}
    rows = []
    for env in allowlist.environments(ecosystem):
        try:
            if version is None:
                decision = allowlist.decide_name(ecosystem, env, name)
            else:
                facts = (
                    stored_release_facts(data_dir, name.lower(), version)
                    if ecosystem is Ecosystem.PYPI
                    else ReleaseFacts()
                )
                decision = allowlist.judge(ecosystem, env, name, version, facts, build)
        except UnknownEnvironment:
            continue
        ask = {"ecosystem": ecosystem.value, "environments": env}
        if ecosystem is Ecosystem.CONDA:
            ask["package"] = f"{name} =={version} {build}".strip() if version else name
        else:
            ask["package"] = name
            if version:
                ask["versions"] = f"=={version}" if ecosystem is Ecosystem.PYPI else version
            if decision.condition:
                ask["waive"] = decision.condition
        rows.append({"environment": env, "decision": decision, "ask": urlencode(ask)})
    return {"name": name, "version": version, "build": build, "rows": rows, "error": None}


@router.get("/")
async def home(
    request: Request,
    viewer: ViewerDep,
    q: Annotated[str, Query(max_length=300)] = "",
    ecosystem: Ecosystem = Ecosystem.PYPI,
) -> Response:
    allowlist = viewer.parts.policy.current()
    found = await run_in_threadpool(search, allowlist, ecosystem, q, viewer.parts.settings.data_dir) if q else None
    mine, total = [], 0
    if viewer.may_request:
        mine, total = await run_in_threadpool(
            viewer.parts.requests.rows, viewer.principal, requested_by=viewer.principal.user, limit=10
        )
    return page(
        request,
        "home.html",
        viewer,
        q=q,
        ecosystem=ecosystem.value,
        found=found,
        forms=SPEC_FORMS,
        mine=mine,
        total=total,
    )


async def _page_of(viewer, page_number: int, **filters):
    """A page of the requests the viewer may read, and how many there are in all."""
    return await run_in_threadpool(
        lambda: viewer.parts.requests.rows(viewer.principal, limit=PAGE, offset=(page_number - 1) * PAGE, **filters)
    )


@router.get("/requests")
async def my_requests(
    request: Request, viewer: ViewerDep, page_number: Annotated[int, Query(alias="page", ge=1)] = 1
) -> Response:
    try:
        rows, total = await _page_of(viewer, page_number, requested_by=viewer.principal.user)
    except REFUSALS as exc:
        return refusal_page(request, viewer, exc)
    return page(request, "requests.html", viewer, rows=rows, total=total, page_number=page_number, size=PAGE)


@router.get("/requests/new")
async def new_request(
    request: Request,
    viewer: ViewerDep,
    ecosystem: Ecosystem = Ecosystem.PYPI,
    package: Annotated[str, Query(max_length=300)] = "",
    versions: Annotated[str, Query(max_length=300)] = "",
    environments: Annotated[list[str], Query(max_length=10)] = [],  # noqa: B006 - FastAPI reads it
    project: Annotated[str, Query(max_length=100)] = "",
    justification: Annotated[str, Query(max_length=5000)] = "",
    duration_days: Annotated[int, Query(ge=1, le=3650)] = 30,
    waive: Annotated[list[str], Query(max_length=4)] = [],  # noqa: B006
    check: bool = False,
) -> Response:
    """The form, prefilled; with `check`, the pre-checks run first and are shown before submitting."""
    allowlist = viewer.parts.policy.current()
    form = {
        "ecosystem": ecosystem.value,
        "package": package,
        "versions": versions,
        "environments": environments,
        "project": project or (sorted(viewer.principal.projects)[0] if viewer.principal.projects else ""),
        "justification": justification,
        "duration_days": duration_days,
        "waive": waive,
    }
    checks, problem = None, None
    if check:
        try:
            new = _new(form)
            checks = await run_in_threadpool(viewer.parts.requests.preview, viewer.principal, new)
        except REFUSALS as exc:
            problem = getattr(exc, "reason", None) or str(exc)
    return page(
        request,
        "request_new.html",
        viewer,
        form=form,
        checks=checks,
        problem=problem,
        known_environments=allowlist.environments(ecosystem),
        projects=sorted(viewer.principal.projects),
    )


def _new(form: dict) -> NewRequest:
    return NewRequest(
        form["ecosystem"],
        form["package"].strip(),
        form["versions"].strip() or None,
        sorted(set(form["environments"])),
        form["project"],
        " ".join(form["justification"].split()),
        int(form["duration_days"]),
        tuple(sorted(set(form["waive"]))),
    )


@router.post("/requests")
async def create_request(request: Request, viewer: ViewerDep) -> Response:
    data = await request.form()
    form = {
        "ecosystem": str(data.get("ecosystem", "pypi")),
        "package": str(data.get("package", ""))[:300],
        "versions": str(data.get("versions", ""))[:300],
        "environments": [str(e) for e in data.getlist("environments")][:10],
        "project": str(data.get("project", ""))[:100],
        "justification": str(data.get("justification", ""))[:5000],
        "duration_days": str(data.get("duration_days", "30")),
        "waive": [str(w) for w in data.getlist("waive")][:4],
    }
    try:
        viewer.check_csrf(str(data.get("csrf", "")))
        if not form["duration_days"].isdigit():
            raise ValueError("duration_days: a number of days")
        if len(form["justification"].split()) < 4 or len(form["justification"]) < 20:
            raise ValueError("justification: say why the package is needed in a sentence (at least 20 characters)")
        row = await run_in_threadpool(viewer.parts.requests.create, viewer.principal, _new(form))
    except ValueError as exc:
        return page(request, "refused.html", viewer, status=422, message=str(exc))
    except REFUSALS as exc:
        return refusal_page(request, viewer, exc)
    return RedirectResponse(f"/ui/requests/{row.id}", status_code=303)


@router.get("/requests/{request_id}")
async def request_detail(request: Request, request_id: int, viewer: ViewerDep) -> Response:
    try:
        row = await run_in_threadpool(viewer.parts.requests.get, viewer.principal, request_id)
    except REFUSALS as exc:
        return refusal_page(request, viewer, exc)
    return page(request, "request.html", viewer, row=row, **_decidable(viewer, row))


def _decidable(viewer, row) -> dict:
    principal = viewer.principal
    own = row.requested_by == principal.user
    may = row.status == "pending" and principal.may(Permission.DECIDE, row.project) and not own
    return {"may_decide": may, "own": own, "closure": closure_packages_of(row)}


def closure_packages_of(row) -> list[dict]:
    return list(closure_packages([Precheck.from_dict(check) for check in row.prechecks or ()]))


@router.post("/requests/{request_id}/decide")
async def decide(
    request: Request,
    request_id: int,
    viewer: ViewerDep,
    decision: Annotated[str, Form(pattern="^(approve|reject)$")],
    comment: Annotated[str, Form(min_length=1, max_length=5000)],
    csrf: Annotated[str, Form(max_length=100)] = "",
    with_closure: Annotated[bool, Form()] = False,
    back: Annotated[str, Form(pattern="^(queue|request)$")] = "request",
) -> Response:
    try:
        viewer.check_csrf(csrf)
        await run_in_threadpool(
            viewer.parts.requests.record_decision,
            viewer.principal,
            request_id,
            decision == "approve",
            comment.strip(),
            with_closure,
        )
    except REFUSALS as exc:
        return refusal_page(request, viewer, exc)
    target = "/ui/queue" if back == "queue" else f"/ui/requests/{request_id}"
    return RedirectResponse(target, status_code=303)


@router.get("/queue")
async def queue(
    request: Request, viewer: ViewerDep, page_number: Annotated[int, Query(alias="page", ge=1)] = 1
) -> Response:
    try:
        rows, total = await _page_of(viewer, page_number, status="pending", decidable=True)
    except REFUSALS as exc:
        return refusal_page(request, viewer, exc)
    cards = [{"row": row, **_decidable(viewer, row)} for row in rows]
    return page(request, "queue.html", viewer, cards=cards, total=total, page_number=page_number, size=PAGE)
