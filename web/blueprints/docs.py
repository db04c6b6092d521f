"""`/docs`: the API reference (Swagger UI from npm, reading the app's own /openapi.json),
and `ApiDocument`, which builds that document so that it tells the truth.

The document covers the JSON API (every route under `/api/`): the HTML pages and Twilio's
webhooks are not an API for integrators. To what each route declares (its bodies, its own
errors), `ApiDocument` adds the answers the app's edge gives on any route, so no route can
forget them:

- 400 (`validation_error`, `invalid_json`): the input guard (web/input_guard.py) refuses
  control characters in any query parameter, and malformed JSON bodies;
- 413 for a route with a body (web/input_guard.py's size limit);
- 404 for a route with an id in its path: ids are bounded to the database's integer
  (web/converters.py), and the path parameter's schema says so;
- 401, and the security schemes, for every `@api` route (web/auth/access.py); 403 for one
  that changes state (CSRF with a session cookie) or is limited to some roles;
- 429: the app-wide limits per client address apply to every route.

Every error body is `ErrorResponse` (`{"error": {"code", "message", "fields"?}}`).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, render_template
from quart_schema.openapi import OpenAPIProvider
from werkzeug.routing import BaseConverter, Rule

from schemas.agent_api import ErrorResponse
from schemas.enums import AgentRole
from web.auth.access import STATE_CHANGING, access_of, public
from web.converters import BoundedInt

blueprint = Blueprint("docs", __name__)

API_PREFIX = "/api/"
SECURITY: list[dict[str, list[str]]] = [
    {"bearerAuth": []},
    {"sessionCookie": [], "csrfHeader": []},
]
EVERY_ROLE = frozenset(AgentRole)
# What a route answers that neither its models nor its access rule can say: a success
# without a body, or an error of its own on a public route.
NO_CONTENT = {"api_logout": "Signed out: the token (or the session and its tokens) revoked."}
OWN_ERRORS = {"api_token": {401}}  # wrong email or password
ERROR_DESCRIPTIONS = {
    400: "The request is not valid: `fields` names each field and what is wrong.",
    401: "Not signed in (no, an expired or a revoked token), or wrong credentials.",
    403: "Not allowed: the role may not do this, or the CSRF token is missing.",
    404: "No such resource, or not one the caller may see.",
    413: "The body is larger than the limit.",
    429: "Too many requests; `Retry-After` says when to try again.",
}


@blueprint.get("/docs")
@public("API reference for integrators")
async def api_docs() -> str:
    return await render_template("api_docs.html")


class ApiDocument(OpenAPIProvider):
    def generate_rules(self) -> Any:
        return (rule for rule in super().generate_rules() if rule.rule.startswith(API_PREFIX))

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, BoundedInt):
            parameter["schema"] = {
                "type": "integer",
                "minimum": converter.min if converter.min is not None else 0,
                "maximum": converter.max,
            }
        return parameter

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        error, error_components = self.build_response_object(ErrorResponse, None)
        components.update(error_components)
        view = self._app.view_functions[rule.endpoint]
        access = access_of(view)
        endpoint = rule.endpoint.rsplit(".", 1)[-1]
        for path, operations in paths.items():
            for method, operation in operations.items():
                responses = dict(operation["responses"])  # per method (build_paths shares it)
                if endpoint in NO_CONTENT:
                    responses.setdefault(204, {"description": NO_CONTENT[endpoint]})
                statuses = {400, 429, *OWN_ERRORS.get(endpoint, ())}
                if rule.arguments:
                    statuses.add(404)
                if "requestBody" in operation:
                    statuses.add(413)
                if access is not None and access.kind == "api":
                    operation["security"] = operation.get("security") or SECURITY
                    statuses.add(401)
                    if method.upper() in STATE_CHANGING or access.roles != EVERY_ROLE:
                        statuses.add(403)
                elif access is not None and access.csrf and method.upper() in STATE_CHANGING:
                    statuses.add(403)
                for status in sorted(statuses):
                    if status not in responses:
                        described = dict(error)
                        described["description"] = ERROR_DESCRIPTIONS[status]
                        responses[status] = described
                operation["responses"] = responses
                operations[method] = operation
            paths[path] = operations
        return paths, components
