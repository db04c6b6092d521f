"""Security headers on every response.

The CSP allows only this origin: every script and stylesheet is served by the app itself
(front-end libraries come from npm into node_modules, never from a CDN) and pages carry no
inline script, so the policy needs no 'unsafe-inline'.
"""

from __future__ import annotations

from quart import Quart, Response

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        # the Twilio Voice SDK talks to Twilio over secure websockets
        "connect-src 'self' wss://*.twilio.com https://*.twilio.com",
        "media-src 'self' blob:",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)


def install_security_headers(app: Quart, *, https: bool) -> None:
    @app.after_request
    async def add_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        # microphone: browser calling needs it, from this origin only
        headers.setdefault("Permissions-Policy", "microphone=(self), camera=(), geolocation=()")
        if https:
            headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
        if response.mimetype == "application/json":
            headers.setdefault("Cache-Control", "no-store")
        return response
