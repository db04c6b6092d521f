"""`/m/<token>`: the claimant's landing page for a magic link, and the hand-off to the main app.

GET only shows a confirmation page (and counts the click): mail and SMS link scanners fetch
links before the claimant does, so opening a link must not use it up. The claimant's POST
consumes the link in one atomic UPDATE and is redirected (303) to
`{MAIN_APP_URL}/auth/dialler-handoff?token=<JWT>` (see docs/magic-link-handoff.md).

Unknown, used and expired tokens get the same page with the same status, so the responses
say nothing about which tokens exist. The routes are public, so they carry a tight rate limit
on top of the app-wide defaults.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

from quart import Blueprint, Response, render_template, request, url_for
from quart_rate_limiter import RateLimitExceeded, rate_limit
from structlog import get_logger

from adapters import magic_links
from adapters.audit_log import append_audit
from domain.magic_links import TOKEN_PATTERN, hash_token, issue_handoff
from web.auth.access import public
from web.auth.throttle import magic_link_keys, sign_in_throttle
from web.ratelimit import client_address_key
from web.security import CONTENT_SECURITY_POLICY
from web.services import services

log = get_logger(__name__)

blueprint = Blueprint("magic_links", __name__)

HANDOFF_PATH = "/auth/dialler-handoff"
PUBLIC_LIMIT = rate_limit(10, timedelta(minutes=1))
_TOKEN = re.compile(TOKEN_PATTERN)

# The URL carries a credential: never cache the page, never send it on as a Referer.
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def _main_app_url() -> str:
    return str(services().settings.main_app_url).rstrip("/")


def _landing_csp() -> str:
    """The app's policy, with the main app allowed as a form target: browsers apply
    `form-action` to the redirect that follows the POST, too."""
    parts = urlsplit(_main_app_url())
    origin = f"{parts.scheme}://{parts.netloc}"
    return CONTENT_SECURITY_POLICY.replace("form-action 'self'", f"form-action 'self' {origin}")


async def _invalid() -> Response:
    """One answer for unknown, used, expired and malformed tokens alike."""
    body = await render_template("magic_link_invalid.html")
    return Response(body, status=404, headers=_PAGE_HEADERS, mimetype="text/html")


@blueprint.get("/m/<token>")
@public("a claimant opening their link; the token is the capability")
@PUBLIC_LIMIT
async def open_link(token: str) -> Response:
    """Show the "Continue to your claim" page; the link stays usable."""
    if not _TOKEN.fullmatch(token):
        return await _invalid()
    async with services().dialler_db.begin() as conn:
        link_id = await magic_links.count_click(conn, hash_token(token))
    if link_id is None:
        return await _invalid()
    # No CSRF token in this form: there is no session to ride on, and the unguessable token
    # in the URL is itself the capability (whoever can POST here already holds the link).
    body = await render_template(
        "magic_link.html", action=url_for("magic_links.use_link", token=token)
    )
    headers = _PAGE_HEADERS | {"Content-Security-Policy": _landing_csp()}
    return Response(body, status=200, headers=headers, mimetype="text/html")


@blueprint.post("/m/<token>")
@public("no session and no ambient credential: the unguessable token in the URL is it")
@PUBLIC_LIMIT
async def use_link(token: str) -> Response:
    """Consume the link (once, atomically) and hand the claimant to the main app."""
    # Guessing tokens is a sign-in attempt: failures count per address (web/auth/throttle.py)
    throttle, keys = sign_in_throttle(), magic_link_keys(await client_address_key())
    locked = await throttle.lockout(keys)
    if locked is not None:
        raise RateLimitExceeded(locked.retry_after)
    if not _TOKEN.fullmatch(token):
        await throttle.record_failure(keys, route="/m/<token>", address=request.remote_addr)
        return await _invalid()
    deps = services()
    address = (request.remote_addr or "")[:45] or None
    async with deps.dialler_db.begin() as conn:
        link = await magic_links.consume(conn, hash_token(token))
        if link is not None:
            await append_audit(
                conn,
                actor_type="claimant",
                actor_id=str(link.user_id),
                action="magic_link_used",
                subject_type="user",
                subject_id=str(link.user_id),
                detail={"link_id": link.link_id},
                ip_address=address,
            )
    if link is None:
        await throttle.record_failure(keys, route="/m/<token>", address=request.remote_addr)
        return await _invalid()

    handoff = issue_handoff(
        user_id=link.user_id,
        link_id=link.link_id,
        secret=deps.settings.magic_link_secret.get_secret_value(),
        now=datetime.now(UTC),
        jti=secrets.token_urlsafe(16),
    )
    log.info("magic link used", link_id=link.link_id, user_id=link.user_id)
    location = f"{_main_app_url()}{HANDOFF_PATH}?{urlencode({'token': handoff})}"
    return Response("", status=303, headers=_PAGE_HEADERS | {"Location": location})
