"""One API error type; every error leaves the app as JSON with a stable code, or, for a page a
browser navigated to (a plain form post, a link), as a page saying the same thing with a way
back: a person filling in a form never meets a raw JSON body.

The claimants' workflows answer through `workflows.outreach_client`, whose two errors are
mapped here, once, for every route that lets them through (the JSON API, webhooks):
`OutreachRefused` is 409 `refused` with the workflow's reason, `OutreachUnavailable` is 503
`outreach_unavailable` with `Retry-After`. HTML pages catch the same two errors and show
them in their panels instead."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, jsonify, render_template, request
from quart_rate_limiter import RateLimitExceeded
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from web.redirects import safe_next
from workflows.outreach_client import OutreachRefused, OutreachUnavailable


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


def validation_messages(error: Exception) -> dict[str, str]:
    """Field name -> what is wrong with it, from a failed request validation (a body that
    is not a JSON object at all is reported under "body")."""
    if isinstance(error, ValidationError):
        fields: dict[str, str] = {}
        for problem in error.errors(include_url=False):
            name = ".".join(str(part) for part in problem["loc"]) or "body"
            fields.setdefault(name, problem["msg"])
        return fields
    return {"body": "Send a JSON object with the documented fields."}


def _body(code: str, message: str, **detail: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **detail}}


def _browser_page() -> bool:
    """A page a browser navigated to: not the JSON API, not an htmx request (the console's
    script shows those answers' messages itself)."""
    return (
        not request.path.startswith("/api/")
        and "HX-Request" not in request.headers
        and request.accept_mimetypes.best == "text/html"
    )


def _back() -> str:
    """Where "Go back" leads: the page the browser came from, when it is on this site."""
    referrer = request.referrer or ""
    origin = request.host_url.rstrip("/")
    path = referrer[len(origin) :] if referrer.startswith(origin + "/") else ""
    return safe_next(path, default="/console")


async def _answer(status: int, code: str, message: str, **detail: Any) -> Response:
    if _browser_page():
        fields = detail.get("fields") if isinstance(detail.get("fields"), dict) else None
        page = await render_template("error.html", message=message, fields=fields, back=_back())
        return Response(page, status=status, mimetype="text/html")
    response = jsonify(_body(code, message, **detail))
    response.status_code = status
    return response


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(APIError)
    async def api_error(error: APIError) -> Response:
        return await _answer(error.status, error.code, error.message, **error.detail)

    @app.errorhandler(OutreachRefused)
    async def outreach_refused(error: OutreachRefused) -> tuple[Response, int]:
        return jsonify(_body("refused", str(error))), 409

    @app.errorhandler(OutreachUnavailable)
    async def outreach_unavailable(
        error: OutreachUnavailable,
    ) -> tuple[Response, int, dict[str, str]]:
        body = _body("outreach_unavailable", str(error))
        return jsonify(body), 503, {"Retry-After": str(error.retry_after_seconds)}

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(error: RequestSchemaValidationError) -> tuple[Response, int]:
        fields = validation_messages(error.validation_error)
        body = _body("validation_error", "The request is not valid.", fields=fields)
        return jsonify(body), 400

    @app.errorhandler(RateLimitExceeded)
    async def rate_limited(error: RateLimitExceeded) -> tuple[Response, int, dict[str, str]]:
        body = _body("rate_limited", "Too many requests; try again shortly.")
        return jsonify(body), 429, {"Retry-After": str(error.retry_after)}

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = (error.name or "error").lower().replace(" ", "_")
        if status == 413:  # the same code as the JSON body limit (web/input_guard.py)
            code = "payload_too_large"
        return await _answer(status, code, error.description or error.name)
