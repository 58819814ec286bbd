"""The console's plumbing: sign-in and sign-out, the cookie, form tokens, roles, rendering.

Pages are server-rendered (Jinja2, autoescaped) and read without JavaScript; the vendored
htmx only makes links and forms swap the page in place. Every answer forbids framing,
inline scripts and caching. ``pages.py`` holds the screens, ``actions.py`` what admins do.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlencode

import anyio
import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from payout131.clock import Clock, rfc3339_seconds
from payout131.console import audit, logins, operators
from payout131.console.logins import Login
from payout131.console.operators import SignIn
from payout131.storage import Database

__all__ = ["Refusal", "Web", "kopecks", "moment"]

T = TypeVar("T")

COOKIE = "payout131_console"
FORM_COOKIE = "payout131_console_form"  # the sign-in form's token, before any sign-in
NOTE_COOKIE = "payout131_console_note"  # what an action tells the page it leads to, once
# sign-ins tried from one address within THROTTLE_S, past which it waits: for one name
# (more than the lockout's 5, so a real operator is locked first), and for all names (an
# SSH tunnel or an untrusted proxy makes every operator one address: a loose limit)
THROTTLE_PER_NAME = 10
THROTTLE_PER_ADDRESS = 100
THROTTLE_S = 15 * 60
MAX_FORM_BYTES = 64 * 1024
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


class Refusal(Exception):
    """A request the console answers with a page naming what is wrong (``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


def rubles(kopecks: int | None) -> str:
    if kopecks is None:
        return ""
    sign = "-" if kopecks < 0 else ""
    whole, part = divmod(abs(kopecks), 100)
    return f"{sign}{whole:,}.{part:02d}".replace(",", "\u202f")


def typed(kopecks: int) -> str:
    """An amount as a form field holds it: ``1500.50``, no separators."""
    whole, part = divmod(kopecks, 100)
    return f"{whole}.{part:02d}"


def kopecks(text: str, field: str) -> int | None:
    """A ruble amount typed in a form (``1500``, ``1 500,50``) in kopecks; None if empty."""
    text = "".join(text.split()).replace(",", ".")  # any space, a narrow no-break one too
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(-1)
    if (
        not text.replace(".", "", 1).isdigit()
        or not text.isascii()
        or value.as_tuple().exponent < -2  # type: ignore[operator]
        or value > 10**13
    ):
        raise Refusal(f"{field}: {text[:30]!r} is not an amount in rubles like 1500.50")
    return int(value * 100)


def moment(text: str, field: str) -> int | None:
    """A time typed in a form: ``2026-12-07T10:00`` (UTC) or RFC 3339 with an offset; µs."""
    text = text.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise Refusal(f"{field}: {text[:40]!r} is not a time like 2026-12-07T10:00 (UTC)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if not 2000 <= parsed.year <= 9999:
        raise Refusal(f"{field}: {text[:40]!r} is not between the years 2000 and 9999")
    return int(parsed.timestamp() * 1_000_000)


@dataclass(frozen=True, slots=True)
class Seen:
    """Who is looking: their sign-in (None before one) and the request."""

    request: Request
    login: Login | None


class Web:
    """What every console page uses: the store, the clock, the templates, the sign-in."""

    def __init__(self, db: Database, clock: Clock, *, mode: str) -> None:
        self.db, self.clock, self.mode = db, clock, mode
        self.limiter = anyio.CapacityLimiter(8)  # pages and actions
        self.slow = anyio.CapacityLimiter(2)  # what waits long (a clock's advance)
        self.per_name = Throttle(THROTTLE_PER_NAME, THROTTLE_S)
        self.per_address = Throttle(THROTTLE_PER_ADDRESS, THROTTLE_S)
        self.hashing = anyio.CapacityLimiter(2)  # Argon2: 64 MiB and tens of ms a check
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("payout131.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.templates.globals.update(rubles=rubles, typed=typed, when=_when, mode=mode)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` (which uses the store) on a worker thread."""
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self.limiter)

    async def run_slow(self, fn: Callable[..., T], *args: Any) -> T:
        """``run`` for what may wait long, on threads of its own (pages stay quick)."""
        return await anyio.to_thread.run_sync(partial(fn, *args), limiter=self.slow)

    # -- answers -------------------------------------------------------------------------

    def render(self, seen: Seen, template: str, code: int = 200, **context: Any) -> Response:
        request = seen.request
        base = request.scope.get("root_path", "")
        note = unquote(request.cookies.get(NOTE_COOKIE, ""))[:300]
        html = self.templates.get_template(template).render(
            base=base, login=seen.login, note=note, path=request.url.path, **context
        )
        answer = HTMLResponse(html, status_code=code, headers=HEADERS)
        if note:  # shown once
            answer.delete_cookie(NOTE_COOKIE, path=self._path(request))
        return answer

    async def missing(self, request: Request, exc: Exception) -> Response:
        """No such page (404), or not with this HTTP method (405)."""
        status = getattr(exc, "status_code", 404)
        what = "no such page" if status == 404 else f"{request.method} is not how this page is used"
        return self.refused(Seen(request, None), Refusal(f"{request.url.path}: {what}", status))

    def refused(self, seen: Seen, refusal: Refusal) -> Response:
        return self.render(seen, "refused.html", refusal.status, message=refusal.message)

    def go(self, request: Request, path: str, note: str = "", **query: Any) -> Response:
        """A redirect (303: the browser GETs it) to ``path`` under the console; ``note`` is
        shown once by the page it leads to (in a cookie: no link can put words there)."""
        params = {k: v for k, v in query.items() if v not in (None, "")}
        target = request.scope.get("root_path", "") + path
        if params:
            target += "?" + urlencode(params)
        answer = RedirectResponse(target, status_code=303, headers=HEADERS)
        if note:
            self._cookie(request, answer, NOTE_COOKIE, quote(note[:300]), 60)
        return answer

    # -- who is looking --------------------------------------------------------------------

    def _login(self, token: str) -> Login | None:
        now = self.clock.now()
        with self.db.read() as conn:
            found = logins.find(conn, token, now)
        if found is not None and now - found.seen_at >= logins.TOUCH_S * 1_000_000:
            with self.db.write() as conn:
                logins.touch(conn, found, now)
        return found

    def _anyone(self) -> bool:
        with self.db.read() as conn:
            return operators.exist(conn)

    def page(
        self, handler: Callable[[Seen], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A page for any signed-in operator; the sign-in page for anyone else."""

        async def endpoint(request: Request) -> Response:
            seen = Seen(request, None)
            if not await self.run(self._anyone):
                return self.render(seen, "setup.html", 503)
            login = await self.run(self._login, request.cookies.get(COOKIE, ""))
            if login is None:
                return self.go(request, "/login", next=_next(request))
            seen = Seen(request, login)
            try:
                _printable(request.query_params.multi_items())
                _printable(request.path_params.items())
                return await handler(seen)
            except Refusal as refusal:
                return self.refused(seen, refusal)

        return endpoint

    def action(
        self, handler: Callable[[Seen, FormData], Awaitable[Response]], *, admin: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """A form's POST: signed in, carrying the sign-in's form token, by an admin unless
        ``admin`` is False; else refused with a page saying which."""

        async def endpoint(request: Request) -> Response:
            seen = Seen(request, None)
            login = await self.run(self._login, request.cookies.get(COOKIE, ""))
            if login is None:
                return self.refused(
                    seen, Refusal("you are not signed in (or your sign-in has ended)", 401)
                )
            seen = Seen(request, login)
            try:
                _printable(request.path_params.items())
                form = await self.form(request)
                if not logins.same(str(form.get("csrf", "")), login.csrf):
                    raise Refusal(
                        "the form's token is missing or stale: reload the page and send it again",
                        403,
                    )
                if admin and not login.operator.admin:
                    raise Refusal(
                        f"{login.operator.name} is a viewer: only an admin may do this", 403
                    )
                return await handler(seen, form)
            except Refusal as refusal:
                return self.refused(seen, refusal)

        return endpoint

    async def form(self, request: Request) -> FormData:
        length = request.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_FORM_BYTES:
            raise Refusal(f"a form is at most {MAX_FORM_BYTES} bytes, with its length given", 413)
        kind = request.headers.get("content-type", "")
        if not kind.startswith("application/x-www-form-urlencoded"):
            raise Refusal("a form is sent as application/x-www-form-urlencoded", 415)
        form = await request.form(max_files=0, max_fields=100)
        _printable((name, str(value)) for name, value in form.multi_items())
        return form

    # -- signing in and out ----------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        seen = Seen(request, None)
        if not await self.run(self._anyone):
            return self.render(seen, "setup.html", 503)
        token = request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
        answer = self.render(seen, "login.html", form_token=token, next=_next(request))
        self._cookie(request, answer, FORM_COOKIE, token, 3600)
        return answer

    async def sign_in(self, request: Request) -> Response:
        seen = Seen(request, None)
        try:
            form = await self.form(request)
        except Refusal as refusal:
            return self.refused(seen, refusal)
        given = str(form.get("form_token", ""))
        if not given or not logins.same(given, request.cookies.get(FORM_COOKIE, "")):
            stale = Refusal("the sign-in form's token is missing or stale: reload the page", 403)
            return self.refused(seen, stale)
        name, password = str(form.get("name", ""))[:64], str(form.get("password", ""))
        address = request.client.host if request.client else "unknown"
        now = time.monotonic()
        wait = max(self.per_name.wait((address, name), now), self.per_address.wait(address, now))
        if wait:
            minutes = max(1, round(wait / 60))
            return self.refused(
                seen,
                Refusal(
                    f"too many failed sign-ins from {address}: try again in {minutes} minute(s)",
                    429,
                ),
            )
        # counted before the hash is checked (parallel tries cannot slip past), taken back
        # if it succeeds
        self.per_name.tried((address, name), now)
        self.per_address.tried(address, now)
        result, token = await anyio.to_thread.run_sync(
            partial(self._check, name, password, address), limiter=self.hashing
        )
        if token is not None:
            self.per_name.forget((address, name))
        else:
            return self.render(
                seen,
                "login.html",
                401,
                form_token=given,
                next=str(form.get("next", "")),
                refused=result.refused,
                name=name,
            )
        answer = self.go(request, _safe_next(str(form.get("next", ""))))
        self._cookie(request, answer, COOKIE, token, logins.MAX_AGE_S)
        answer.delete_cookie(FORM_COOKIE, path=self._path(request))
        return answer

    def _check(self, name: str, password: str, address: str) -> tuple[SignIn, str | None]:
        """The sign-in's outcome, and the new sign-in's token if it succeeded. The password
        is hashed before the write transaction (no write waits for Argon2)."""
        try:
            operators.check_name(name)
        except ValueError:  # never a query with a name no operator can have
            name = ""
        found, matched = operators.check(self.db, name, password)
        if found is None:
            return SignIn(None, "wrong name or password"), None
        now = self.clock.now()
        with self.db.write() as conn:  # a refusal's count and lock commit too
            result = operators.settle(conn, name, matched, now)
            if result.operator is None:
                if result.locked_now:
                    audit.record(
                        conn, operator=name, action="sign_in.locked", at=now, address=address
                    )
                return result, None
            token = logins.begin(conn, result.operator.name, now)
            audit.record(conn, operator=name, action="sign_in", at=now, address=address)
            return result, token

    async def sign_out(self, seen: Seen, form: FormData) -> Response:
        assert seen.login is not None
        login, request = seen.login, seen.request
        address = request.client.host if request.client else None

        def end() -> None:
            now = self.clock.now()
            with self.db.write() as conn:
                logins.end(conn, login, now)
                audit.record(
                    conn, operator=login.operator.name, action="sign_out", at=now, address=address
                )

        await self.run(end)
        answer = self.go(request, "/login", note="signed out")
        answer.delete_cookie(COOKIE, path=self._path(request))
        answer.headers["Clear-Site-Data"] = '"cache", "storage"'  # nothing kept in the browser
        return answer

    def _path(self, request: Request) -> str:
        return request.scope.get("root_path", "") or "/"

    def _cookie(self, request: Request, answer: Response, name: str, value: str, age: int) -> None:
        answer.set_cookie(
            name,
            value,
            max_age=age,
            path=self._path(request),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )


class Throttle:
    """Sign-in tries per key (an address, or an address and a name): past ``limit`` within
    ``window_s`` the key waits. Kept in memory (each process its own), for at most
    ``MAX_KEYS`` keys, the oldest dropped first."""

    MAX_KEYS = 10_000

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self.tries: dict[Hashable, deque[float]] = {}

    def wait(self, key: Hashable, now: float) -> float:
        """Seconds ``key`` must wait before it may try again (0: it may)."""
        found = self.tries.get(key)
        if found is None:
            return 0.0
        while found and found[0] <= now - self.window_s:
            found.popleft()
        if len(found) < self.limit:
            return 0.0
        return found[0] + self.window_s - now

    def tried(self, key: Hashable, now: float) -> None:
        if key not in self.tries and len(self.tries) >= self.MAX_KEYS:
            del self.tries[next(iter(self.tries))]
        self.tries.setdefault(key, deque()).append(now)

    def forget(self, key: Hashable) -> None:
        self.tries.pop(key, None)


def _printable(items: Iterable[tuple[str, str]]) -> None:
    """Refuse a value with a NUL or another control character (no store keeps them)."""
    for name, value in items:
        if any(ord(c) < 32 and c not in "\r\n\t" for c in value):
            raise Refusal(f"{name[:40]}: a control character is not allowed here")


def _when(micros: int | None) -> str:
    return "" if micros is None else rfc3339_seconds(micros)


def _next(request: Request) -> str:
    """Where to go after signing in: this page, under the console."""
    base = request.scope.get("root_path", "")
    path = request.url.path.removeprefix(base) or "/"
    if path.startswith("/login"):
        return request.query_params.get("next", "/")
    return path + (f"?{request.url.query}" if request.url.query else "")


def _safe_next(text: str) -> str:
    """A path under the console, never another site (``//evil``, ``/\\evil``, a scheme)."""
    if not text.startswith("/") or text.startswith(("//", "/\\")) or "\n" in text:
        return "/"
    return text[:500]
