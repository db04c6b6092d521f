"""Twilio webhook signatures (`X-Twilio-Signature`).

Twilio signs the full public URL it called plus the POSTed form. Behind a proxy that URL
is not the one the app sees, so it is rebuilt from PUBLIC_BASE_URL. Without Twilio
credentials the simulated provider signs its webhooks the same way with a key derived
from SECRET_KEY, so the exact same checks run locally and in tests.
"""

from __future__ import annotations

import hashlib
import hmac

from quart import request
from twilio.request_validator import RequestValidator

from config.settings import Settings
from web.errors import APIError
from web.input_guard import scrub
from web.services import services


def signing_key(settings: Settings) -> str:
    if settings.twilio_enabled:
        return settings.twilio_auth_token.get_secret_value()
    secret = settings.secret_key.get_secret_value().encode()
    return hmac.new(secret, b"simulated-twilio", hashlib.sha256).hexdigest()


def public_url(settings: Settings, path_and_query: str) -> str:
    return str(settings.public_base_url).rstrip("/") + path_and_query


def sign(settings: Settings, url: str, params: dict[str, str]) -> str:
    """The signature Twilio (or the simulator) sends for `url` and form `params`."""
    return str(RequestValidator(signing_key(settings)).compute_signature(url, params))


async def verified_form() -> dict[str, str]:
    """The webhook's form, if and only if its signature is valid; otherwise 403."""
    settings = services().settings
    form = {key: value for key, value in (await request.form).items()}
    url = public_url(settings, request.full_path.rstrip("?"))
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not RequestValidator(signing_key(settings)).validate(url, form, signature):
        raise APIError(403, "bad_signature", "The request is not signed by Twilio.")
    # kept, never refused: control characters (which no database column takes) become U+FFFD
    return {key: scrub(value) for key, value in form.items()}
