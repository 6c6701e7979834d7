"""The console's web app (Starlette, Jinja2 templates, SSE): see the README's PSOC section.

Every page checks the session's user on each request (a disabled account is out at once),
every form posts a CSRF token bound to the session, every operator action is written to the
audit log in the same transaction as its effect, and strings from the sites reach the page
only through Jinja2's autoescaping or the live feed's ``textContent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from psoc import sitechannel
from psoc.console import auth
from psoc.console.auth import Principal
from psoc.console.feed import Hub, incident_summary
from psoc.store import Store, kinds_of

_LOGGER = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
SESSION_MAX_AGE_S = 12 * 3600
MAX_FORM_FIELD = 2000
MAX_BODY = 64 * 1024

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class Publisher(Protocol):
    """What the console needs to reach sites (``psoc.sitechannel.SiteChannel``)."""

    def send(
        self, site_id: str, key: bytes, sub: str, payload: dict[str, Any], timeout: float = 5.0
    ) -> None: ...


@dataclass(frozen=True)
class ConsoleSettings:
    secret_key: str
    secure_cookies: bool = True  # False only for plain-HTTP loopback demos and tests
    poll_interval_s: float = 0.1


def _time(value: float | None) -> str:
    if value is None:
        return "-"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = _time
    env.filters["duration"] = _duration
    env.filters["kinds"] = lambda mask: ", ".join(kinds_of(mask))
    env.filters["json"] = lambda value: json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(", ", ": ")
    )
    return env


class _BodyLimit:
    """Refuse request bodies above ``MAX_BODY`` (413), declared or streamed: forms are small."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > MAX_BODY:
            await Response("request too large", status_code=413)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, "request too large")
            return message

        await self.app(scope, limited, send)


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(store: Store, publisher: Publisher, settings: ConsoleSettings) -> Starlette:
    """The console for ``store``; requests to sites go out through ``publisher``."""
    templates = _templates()
    hub = Hub(store, settings.poll_interval_s)
    throttle = auth.LoginThrottle()

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("user", getattr(request.state, "user", None))
        context["csrf"] = request.session.get("csrf", "")
        return HTMLResponse(
            templates.get_template(name).render(request=request, **context), status_code=status
        )

    def current(request: Request) -> Principal | None:
        uid = request.session.get("uid")
        if not isinstance(uid, int):
            return None
        row = store.user(user_id=uid)
        if row is None or row["disabled"]:
            return None
        return Principal.from_row(row)

    def need(
        request: Request, *, role: frozenset[str] | None = None, site_id: str | None = None
    ) -> Principal:
        user = current(request)
        if user is None:
            raise HTTPException(401)
        request.state.user = user
        if role is not None and user.role not in role:
            raise HTTPException(403)
        if site_id is not None and not user.may_see(site_id):
            raise HTTPException(403)
        return user

    async def form_of(request: Request) -> FormData:
        """The posted form, refused (403, audited) without the session's CSRF token."""
        form = await request.form(max_files=0, max_fields=20, max_part_size=MAX_FORM_FIELD)
        if not auth.csrf_ok(request.session.get("csrf"), form.get("csrf")):
            user = getattr(request.state, "user", None)
            await run_in_threadpool(
                store.log,
                user.username if user else "anonymous",
                "csrf_refused",
                time.time(),
                detail=f"{request.method} {request.url.path}",
                result="refused",
            )
            raise HTTPException(403, "missing or wrong CSRF token")
        return form

    def field(form: FormData, name: str, limit: int = 200) -> str:
        value = form.get(name)
        return value.strip()[:limit] if isinstance(value, str) else ""

    # -- pages -------------------------------------------------------------------------

    def login_page(request: Request) -> Response:
        if "csrf" not in request.session:
            request.session["csrf"] = auth.new_csrf_token()
        return render(request, "login.html", user=None, error=None)

    async def login(request: Request) -> Response:
        form = await form_of(request)
        name = field(form, "username", 80)
        password = form.get("password")
        now = time.time()
        if throttle.blocked(name, now):
            return render(
                request,
                "login.html",
                status=429,
                user=None,
                error="Too many attempts; wait a minute.",
            )
        row = await run_in_threadpool(store.user, username=name)
        ok = isinstance(password, str) and await run_in_threadpool(
            auth.check_password, row["password_hash"] if row else None, password
        )
        if not ok or row is None or row["disabled"]:
            throttle.failed(name, now)
            await run_in_threadpool(
                store.log, name or "anonymous", "login_failed", now, result="refused"
            )
            return render(
                request, "login.html", status=401, user=None, error="Wrong name or password."
            )
        throttle.succeeded(name)
        if isinstance(password, str) and auth.needs_rehash(row["password_hash"]):
            await run_in_threadpool(
                store.set_password_hash, row["id"], auth.hash_password(password)
            )
        request.session.clear()  # a fresh session (and token) at every login
        request.session.update({"uid": row["id"], "csrf": auth.new_csrf_token(), "at": now})
        await run_in_threadpool(store.log, name, "login", now, site_id=row["site_id"])
        target = "/incidents" if row["role"] in auth.OPERATORS else f"/sites/{row['site_id']}"
        return RedirectResponse(target, status_code=303)

    async def logout(request: Request) -> Response:
        user = need(request)
        await form_of(request)
        await run_in_threadpool(
            store.log, user.username, "logout", time.time(), site_id=user.site_id
        )
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def home(request: Request) -> Response:
        user = need(request)
        return RedirectResponse(
            "/incidents" if user.operator else f"/sites/{user.site_id}", status_code=303
        )

    def sites_page(request: Request) -> Response:
        user = need(request)
        if not user.operator:
            return RedirectResponse(f"/sites/{user.site_id}", status_code=303)
        return render(request, "sites.html", sites=store.sites_overview(), now=time.time())

    def site_page(request: Request) -> Response:
        site_id = request.path_params["site_id"]
        need(request, site_id=site_id)
        found = store.sites_overview(site_id)
        if not found:
            raise HTTPException(404)
        return render(
            request,
            "site.html",
            site=found[0],
            agents=store.agents(site_id),
            incidents=store.queue(site_id=site_id, include_closed=True, limit=100),
            figures=store.figures(site_id).get(site_id),
            now=time.time(),
        )

    def incidents_page(request: Request) -> Response:
        user = need(request)
        queue = store.queue(site_id=None if user.operator else user.site_id)
        return render(request, "incidents.html", incidents=[incident_summary(r) for r in queue])

    def incident_of(
        request: Request, *, role: frozenset[str] | None = None
    ) -> tuple[Principal, dict[str, Any]]:
        try:
            pk = int(request.path_params["pk"])
        except ValueError as err:
            raise HTTPException(404) from err
        user = need(request, role=role)
        row = store.incident_row(pk)
        if row is None:
            raise HTTPException(404)
        if not user.may_see(row["site_id"]):
            raise HTTPException(403)
        return user, row

    def incident_page(request: Request) -> Response:
        user, row = incident_of(request)
        events = store.incident_events(row["id"])
        site = store.sites_overview(row["site_id"])[0]
        judged = _judged(events)
        return render(
            request,
            "incident.html",
            incident=row,
            events=events,
            site=site,
            actions=store.audit(incident=row["id"]),
            kinds=kinds_of(row["kinds"]),
            judged=judged,
            proposal=_proposal(judged) if judged else None,
            may_act=user.responder,
        )

    async def act(request: Request) -> Response:
        user, row = await run_in_threadpool(incident_of, request, role=auth.RESPONDERS)
        form = await form_of(request)
        what = request.path_params["action"]
        pk, now = row["id"], time.time()
        if what == "acknowledge":
            await run_in_threadpool(
                store.act, pk, user.username, "acknowledge", now, status="acknowledged"
            )
        elif what == "assign":
            assignee = field(form, "assignee", 80) or user.username
            await run_in_threadpool(
                store.act, pk, user.username, "assign", now, assignee=assignee, detail=assignee
            )
        elif what == "close":
            await run_in_threadpool(
                store.act,
                pk,
                user.username,
                "close",
                now,
                status="closed",
                closed_at=now,
                detail=field(form, "note", MAX_FORM_FIELD),
            )
        elif what == "notify":
            channel = field(form, "channel", 40) or "phone"
            await run_in_threadpool(
                store.notified, pk, user.username, channel, field(form, "note", MAX_FORM_FIELD), now
            )
        elif what == "label":
            await label(user, row, field(form, "event_id", 32), field(form, "label", 16), now)
        elif what in ("isolate", "restore"):
            await isolate(user, row, what, field(form, "reason", 512), now)
        else:
            raise HTTPException(404)
        return RedirectResponse(f"/incidents/{pk}", status_code=303)

    async def label(
        user: Principal, row: dict[str, Any], event_id: str, value: str, now: float
    ) -> None:
        if value not in ("normal", "alarm"):
            raise HTTPException(400, "label must be normal or alarm")
        try:
            await run_in_threadpool(store.label, row["id"], event_id, value, user.username, now)
        except KeyError as err:
            raise HTTPException(400, "no such event in this incident") from err
        events = {e["event_id"]: e for e in store.incident_events(row["id"])}
        payload = sitechannel.label_payload(
            events[event_id]["agent_id"], event_id, value, user.username
        )
        await send(row, "site/provider_label", payload, user, "label_sent")

    async def isolate(
        user: Principal, row: dict[str, Any], what: str, reason: str, now: float
    ) -> None:
        action = "start_evacuation" if what == "isolate" else "stop_evacuation"
        payload = sitechannel.request_payload(
            row["agent_id"],
            action,
            incident_id=row["incident_id"],
            culprit={"mac": row["mac"], "ip": row["ip"]},
            reason=reason or "requested by the provider's SOC",
            operator=user.username,
        )
        kind = "request_isolation" if what == "isolate" else "request_restore"
        detail = f"{action} for {row['mac']} ({row['ip'] or 'no IP'}): {payload['reason']}"
        await run_in_threadpool(
            store.request,
            row["id"],
            kind,
            user.username,
            now,
            request_id=payload["id"],
            detail=detail,
        )
        await send(row, "site/request", payload, user, kind)

    async def send(
        row: dict[str, Any], sub: str, payload: dict[str, Any], user: Principal, what: str
    ) -> None:
        keys = await run_in_threadpool(store.site_keys)
        try:
            await run_in_threadpool(
                publisher.send, row["site_id"], keys[row["site_id"]], sub, payload
            )
        except (TimeoutError, OSError, ValueError) as err:
            await run_in_threadpool(
                store.log,
                user.username,
                f"{what}_failed",
                time.time(),
                site_id=row["site_id"],
                incident=row["id"],
                detail=str(err),
                result="failed",
                request_id=payload["id"],
            )

    def audit_page(request: Request) -> Response:
        user = need(request, role=auth.OPERATORS)
        site_id = request.query_params.get("site")
        return render(
            request,
            "audit.html",
            actions=store.audit(site_id=site_id, limit=500),
            site_id=site_id,
            me=user,
        )

    def figures_page(request: Request) -> Response:
        need(request, role=auth.OPERATORS)
        figures = store.figures()
        overall = figures.pop(None, None)
        return render(request, "figures.html", overall=overall, per_site=sorted(figures.items()))

    async def feed(request: Request) -> Response:
        user = await run_in_threadpool(need, request)
        q = hub.subscribe(user)

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                while True:
                    try:
                        message = await asyncio.wait_for(q.get(), timeout=15)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"data: {json.dumps(message, separators=(',', ':'))}\n\n"
            finally:
                hub.unsubscribe(q)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"x-accel-buffering": "no"}
        )

    def health(request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def on_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 401:
            return RedirectResponse("/login", status_code=303)
        if exc.status_code == 403:
            user = getattr(request.state, "user", None)
            await run_in_threadpool(
                store.log,
                user.username if user else "anonymous",
                "forbidden",
                time.time(),
                detail=f"{request.method} {request.url.path}",
                result="refused",
            )
        return render(
            request,
            "error.html",
            status=exc.status_code,
            status_code=exc.status_code,
            detail=exc.detail,
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        yield
        await hub.stop()

    def sync(endpoint: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            return await run_in_threadpool(endpoint, request)

        return run

    routes = [
        Route("/", sync(home)),
        Route("/login", sync(login_page), methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/sites", sync(sites_page)),
        Route("/sites/{site_id}", sync(site_page)),
        Route("/incidents", sync(incidents_page)),
        Route("/incidents/{pk}", sync(incident_page)),
        Route("/incidents/{pk}/{action}", act, methods=["POST"]),
        Route("/audit", sync(audit_page)),
        Route("/figures", sync(figures_page)),
        Route("/feed", feed),
        Route("/healthz", health),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(_BodyLimit),
        Middleware(
            SessionMiddleware,
            secret_key=settings.secret_key,
            session_cookie="lan_guard_psoc",
            max_age=SESSION_MAX_AGE_S,
            same_site="strict",
            https_only=settings.secure_cookies,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: on_error},
    )
    app.state.hub = hub
    return app


def _judged(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The event the supervisor view puts to the operator: the incident's most severe one
    (the first to reach the highest level), not a later ``host_left``."""
    if not events:
        return None
    top = max(e["level"] for e in events)
    return next(e for e in events if e["level"] == top)


def _proposal(event: dict[str, Any]) -> dict[str, Any]:
    """The system's proposal on one event: the site classifier's verdict when it sent one,
    else the level rule (3 alarm, 2 unsure, else normal), and which of the two it is."""
    if event["verdict"]:
        return {
            "verdict": event["verdict"],
            "probability": event["probability"],
            "by": "the site's classifier",
        }
    verdict = {3: "alarm", 2: "unsure"}.get(event["level"], "normal")
    return {
        "verdict": verdict,
        "probability": None,
        "by": "the level rule (no verdict from the site yet)",
    }
