"""One API error type; every error leaves the app as JSON with a stable code."""

from __future__ import annotations

from typing import Any

from quart import Quart, Response, jsonify
from quart_rate_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


def _body(code: str, message: str, **detail: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **detail}}


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(APIError)
    async def api_error(error: APIError) -> tuple[Response, int]:
        return jsonify(_body(error.code, error.message, **error.detail)), error.status

    @app.errorhandler(RateLimitExceeded)
    async def rate_limited(error: RateLimitExceeded) -> tuple[Response, int, dict[str, str]]:
        body = _body("rate_limited", "Too many requests; try again shortly.")
        return jsonify(body), 429, {"Retry-After": str(error.retry_after)}

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> tuple[Response, int]:
        status = error.code or 500
        code = (error.name or "error").lower().replace(" ", "_")
        return jsonify(_body(code, error.description or error.name)), status
