"""Analytics over a date range, with charts and CSV export (`services.analytics`).

- GET /supervisor/analytics?from=YYYY-MM-DD&to=YYYY-MM-DD: the page (the last 7 UK days
  when no date is given). A range that cannot be reported on re-renders the form with its
  message (422).
- GET /supervisor/analytics/lenders?from=..&to=..: the lenders table, which the page loads
  after it (htmx): it reads every claimant's lenders from the claims replica.
- GET /supervisor/analytics/<table>.csv?from=..&to=..: one of the page's tables as CSV,
  the same figures (cells a spreadsheet would run as formulas are quoted).
- GET /supervisor/analytics/splits/<id>: a live split's arms compared (`services.funnel.
  split_arms`): contacts, reached and conversions per arm, the difference with its interval
  and p-value (statsmodels). The page lists the recent splits.

The charts (Chart.js, web/static/js/analytics.js) read their figures from a JSON script
element: it is data, never run, so the CSP's script-src 'self' holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from quart import Blueprint, Response, render_template, request
from quart.typing import ResponseReturnValue

from domain.analytics import (
    MAX_DAYS,
    WORKING_STATES,
    DateRange,
    RangeError,
    hours_minutes,
    last_days,
    parse_range,
    percent,
    uk_today,
)
from schemas.enums import AgentState
from services.analytics import (
    STAGE_HEADINGS,
    STATE_HEADINGS,
    STEPS,
    TABLES,
    Analytics,
    Kind,
    Table,
    analytics,
    lenders,
)
from services.funnel import split_arms
from web.auth.access import supervisor
from web.errors import APIError
from web.services import services

blueprint = Blueprint("supervisor_analytics", __name__)

PRESETS = (7, 30, 90)  # the quick ranges offered, in days up to today
SPLITS_LISTED = 5  # the recent live splits the page links to
CHART_AGENTS = 25  # the state chart shows the agents with the most working time
STATE_COLOURS = {
    AgentState.READY: "#2e7d32",
    AgentState.PAUSED: "#f9a825",
    AgentState.ON_CALL: "#1565c0",
    AgentState.WRAP_UP: "#8e24aa",
}


@blueprint.app_template_filter("analytics_cell")
def analytics_cell(value: Any, kind: Kind) -> str:
    """A table cell as the page shows it (the CSV keeps the raw value)."""
    if value is None:
        return ""
    if kind == "seconds":
        return hours_minutes(value)
    if kind == "rate":
        return percent(value)
    if kind == "count":
        return f"{value:,}"
    return str(value)


def _chosen(now: datetime) -> DateRange:
    return parse_range(request.args.get("from"), request.args.get("to"), uk_today(now))


def _form(error: str | None = None) -> dict[str, Any]:
    return {
        "from": request.args.get("from", "")[:40],
        "to": request.args.get("to", "")[:40],
        "error": error,
    }


def _presets(today: Any) -> list[tuple[str, dict[str, str]]]:
    return [(f"Last {days} days", last_days(today, days).query()) for days in PRESETS]


@blueprint.get("/supervisor/analytics")
@supervisor()
async def page() -> ResponseReturnValue:
    now = datetime.now(UTC)
    today = uk_today(now)
    try:
        chosen = _chosen(now)
    except RangeError as error:
        body = await render_template(
            "supervisor/analytics.html",
            form=_form(str(error)),
            presets=_presets(today),
            report=None,
            max_days=MAX_DAYS,
        )
        return body, 422
    report = await analytics(services().dialler_db, chosen, now)
    return await render_template(
        "supervisor/analytics.html",
        splits=(await services().live_splits().overview(SPLITS_LISTED)).history,
        form={"from": chosen.first_day.isoformat(), "to": chosen.last_day.isoformat()},
        presets=_presets(today),
        report=report,
        tables=TABLES,
        charts=chart_data(report),
        query=chosen.query(),
        max_days=MAX_DAYS,
    )


@blueprint.get("/supervisor/analytics/lenders")
@supervisor()
async def lenders_table() -> ResponseReturnValue:
    """The lenders table alone (the page loads it after itself)."""
    try:
        chosen = _chosen(datetime.now(UTC))
    except RangeError as error:
        return await render_template("supervisor/_analytics_error.html", error=str(error)), 422
    deps = services()
    table = await lenders(deps.dialler_db, deps.replica_db, chosen)
    return await render_template(
        "supervisor/_analytics_table.html", table=table, query=chosen.query()
    )


@blueprint.get("/supervisor/analytics/<table>.csv")
@supervisor()
async def export(table: str) -> Response:
    if table not in TABLES:
        raise APIError(404, "not_found", f"No analytics table is called {table[:40]!r}.")
    now = datetime.now(UTC)
    try:
        chosen = _chosen(now)
    except RangeError as error:
        raise APIError(422, "bad_range", str(error)) from None
    deps = services()
    found: Table
    if table == "lenders":
        found = await lenders(deps.dialler_db, deps.replica_db, chosen)
        if found.unavailable:
            raise APIError(503, "replica_unavailable", found.unavailable)
    else:
        found = (await analytics(deps.dialler_db, chosen, now)).tables[table]
    name = f"analytics-{table}-{chosen.first_day}-to-{chosen.last_day}.csv"
    return Response(
        found.csv(),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def chart_data(report: Analytics) -> dict[str, Any]:
    """The charts' figures, for the page's JSON script element."""
    funnel = report.funnel
    busiest = sorted(
        (a for a in report.agents if a.agent_id is not None and any(a.states.values())),
        key=lambda a: -sum(a.states.values()),
    )[:CHART_AGENTS]
    outcomes = report.tables["outcomes"]
    total_row = outcomes.rows[-1] if outcomes.rows else []
    return {
        "funnel": {
            "labels": [STAGE_HEADINGS[stage] for stage in STEPS],
            "values": [getattr(funnel, stage) for stage in STEPS],
        },
        "hours": {
            "labels": [h.label for h in report.hours],
            "calls": [h.calls for h in report.hours],
            "contactRate": [
                None if h.contact_rate is None else round(h.contact_rate * 100, 1)
                for h in report.hours
            ],
        },
        "states": {
            "labels": [a.name for a in busiest],
            "series": [
                {
                    "label": STATE_HEADINGS[state],
                    "colour": STATE_COLOURS[state],
                    "hours": [round(a.seconds_in(state) / 3600, 2) for a in busiest],
                }
                for state in WORKING_STATES
            ],
        },
        "outcomes": {
            "labels": [c.heading for c in outcomes.columns[1:-1]],
            "values": total_row[1:-1],
        },
    }


@blueprint.get("/supervisor/analytics/splits/<int:split_id>")
@supervisor()
async def split_page(split_id: int) -> ResponseReturnValue:
    deps = services()
    split = await deps.live_splits().split(split_id)
    if split is None:
        raise APIError(404, "not_found", f"There is no live split {split_id}.")
    arms = await split_arms(deps.dialler_db, split, datetime.now(UTC))
    return await render_template("supervisor/split.html", arms=arms, split=split)
