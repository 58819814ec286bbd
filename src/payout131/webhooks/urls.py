"""Webhook URLs: what a project's ``webhook_url`` may be, so that every one can be sent to.

A URL is accepted when the dispatcher's senders can reach it as written: ``http`` or
``https``, a host, a port from 1 to 65535 if one is given, ASCII only (a non-ASCII host in
its ``xn--`` form, a non-ASCII path percent-encoded), no user name or password (nothing
would send them) and no fragment (nothing would either), at most 2,000 characters.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["MAX_URL", "check_webhook_url"]

MAX_URL = 2000


def check_webhook_url(url: str) -> str:
    """``url`` if webhooks can be sent to it; else ValueError saying what is wrong."""
    if len(url) > MAX_URL:
        raise ValueError(f"is {len(url)} characters long, at most {MAX_URL}")
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ValueError(
            "must be ASCII without spaces: give a non-ASCII host in its xn-- form and "
            "percent-encode the rest"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a URL a webhook can be sent to ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("names no host")
    if port == 0:
        raise ValueError("port 0 is not a port to send to (1 to 65535)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold a user name or password (nothing would send them)")
    if parts.fragment or url.endswith("#"):
        raise ValueError("must not end in a #fragment (nothing would send it)")
    return url
