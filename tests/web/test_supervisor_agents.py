"""Agent management over HTTP (/supervisor/agents): a supervisor creates a person who can then
sign in, and an AI agent whose issued API token works on the API until it is revoked or the
agent disabled; signing someone out everywhere ends their sessions and JWTs; nobody climbs
to admin through a supervisor; bad input comes back as the form with its message (422),
never a 500; every change is audited; the token is kept only as its hash and never logged;
the sign-in and state history is paged."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from adapters.live import FLOOR_CHANGED, SUPERVISORS_CHANNEL
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from tests.web.conftest import PASSWORD, Staff, csrf_from, make_staff, sign_in
from tests.web.sms_fixtures import Client, Person, World, claimant_in_queue, rows, signed_in, world

__all__ = ["world"]  # the module's fixture

_TOKEN = re.compile(r'id="issued-token">(rmc_[A-Za-z0-9_-]{43})<')
_GENERATED = re.compile(r'id="generated-password">([A-Za-z0-9_-]+)<')
_emails = iter(range(1, 10_000))
NEW_PASSWORD = "a brand new pass phrase 7"


def fresh_email(kind: str = "person") -> str:
    return f"{kind}{next(_emails)}@agents.test.rmc"


def person_form(**changes: str) -> dict[str, str]:
    return {
        "kind": "person",
        "email": fresh_email(),
        "display_name": "Nadia Patel",
        "role": "agent",
        "queue": "unsigned",
        "password": "violet ladder morning 9",
    } | changes


def ai_form(**changes: str) -> dict[str, str]:
    return {
        "kind": "ai",
        "email": fresh_email("ai"),
        "display_name": "AI voice",
        "queue": "unsigned",
    } | changes


async def created_id(supervisor: Person, form: dict[str, str]) -> int:
    response = await supervisor.post("/supervisor/agents", form)
    assert response.status_code == 303, await response.get_data(as_text=True)
    found = re.fullmatch(r"/supervisor/agents/(\d+)\?done=created", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


async def agent_row(w: World, agent_id: int) -> Any:
    found = await rows(w.dialler, db.agents, db.agents.c.id == agent_id)
    assert len(found) == 1
    return found[0]


async def audit_actions(w: World, agent_id: int) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(action, actor id, detail) of the audit rows about this account, oldest first."""
    found = await rows(
        w.dialler,
        db.audit_log,
        db.audit_log.c.subject_type == "agent",
        db.audit_log.c.subject_id == str(agent_id),
    )
    return [(r.action, r.actor_id, dict(r.detail)) for r in found]


async def issue(supervisor: Person, agent_id: int, label: str = "AI worker") -> str:
    response = await supervisor.post(f"/supervisor/agents/{agent_id}/tokens", {"label": label})
    page = await response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert response.headers["Cache-Control"] == "no-store"
    found = _TOKEN.search(page)
    assert found, "the token is not on the page"
    return found.group(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def me_status(w: World, token: str) -> int:
    response = await Client(w.app).get("/api/me", headers=bearer(token))
    return int(response.status_code)


# --- people -----------------------------------------------------------------------------------


async def test_a_supervisor_creates_a_person_who_can_sign_in(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    form = person_form(email="  Nadia.Patel@Example.CO.UK ")
    agent_id = await created_id(supervisor, form)

    row = await agent_row(world, agent_id)
    assert (row.email, row.display_name, row.role, row.queue, row.is_ai, row.is_active) == (
        "nadia.patel@example.co.uk", "Nadia Patel", "agent", "unsigned", False, True,
    )  # fmt: skip
    assert row.password_hash.startswith("$argon2id$")
    assert form["password"] not in row.password_hash

    newcomer = Staff(agent_id, "nadia.patel@example.co.uk", AgentRole.AGENT, Queue.UNSIGNED)
    assert await sign_in(Client(world.app).raw, newcomer, form["password"]) == 303

    listing = await (await supervisor.get("/supervisor/agents")).get_data(as_text=True)
    assert f'<tr data-agent-id="{agent_id}"' in listing and "nadia.patel@example.co.uk" in listing
    page = await supervisor.get(f"/supervisor/agents/{agent_id}?done=created")
    text = await page.get_data(as_text=True)
    assert page.status_code == 200 and "Account created." in text and "Sign-ins" in text

    [(action, actor, detail)] = await audit_actions(world, agent_id)
    assert (action, actor) == ("agent_created", str(supervisor.staff.id))
    assert detail["email"] == "nadia.patel@example.co.uk" and detail["is_ai"] is False
    assert form["password"] not in str(detail)


async def test_reset_password_set_or_generated_ends_their_sessions(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    person = await signed_in(world)
    assert (await person.client.get("/api/me")).status_code == 200

    response = await supervisor.post(
        f"/supervisor/agents/{person.staff.id}/password", {"new_password": NEW_PASSWORD}
    )
    assert response.status_code == 200
    assert (await person.client.get("/api/me")).status_code == 401  # the old session ended
    assert await sign_in(Client(world.app).raw, person.staff, PASSWORD) == 401
    assert await sign_in(Client(world.app).raw, person.staff, NEW_PASSWORD) == 303

    generated = await supervisor.post(
        f"/supervisor/agents/{person.staff.id}/password", {"generate": "1"}
    )
    page = await generated.get_data(as_text=True)
    found = _GENERATED.search(page)
    assert generated.status_code == 200 and found
    assert generated.headers["Cache-Control"] == "no-store"
    assert await sign_in(Client(world.app).raw, person.staff, found.group(1)) == 303
    assert await sign_in(Client(world.app).raw, person.staff, NEW_PASSWORD) == 401

    audited = await audit_actions(world, person.staff.id)
    assert [(a, d["generated"]) for a, _, d in audited] == [
        ("agent_password_reset", False),
        ("agent_password_reset", True),
    ]
    assert found.group(1) not in str(audited) and NEW_PASSWORD not in str(audited)


async def test_role_and_queue_change(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    agent = await make_staff(world.dialler)
    response = await supervisor.post(
        f"/supervisor/agents/{agent.id}/role", {"role": "supervisor", "queue": ""}
    )
    assert response.status_code == 303
    row = await agent_row(world, agent.id)
    assert (row.role, row.queue) == ("supervisor", None)
    [(action, _, detail)] = await audit_actions(world, agent.id)
    assert action == "agent_role_queue_changed"
    assert detail == {
        "from": {"role": "agent", "queue": "unsigned"},
        "to": {"role": "supervisor", "queue": None},
    }


# --- AI agents and API tokens -----------------------------------------------------------------


async def test_an_ai_agents_token_works_on_the_api_until_revoked(
    world: World, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    robot_id = await created_id(supervisor, ai_form())
    robot = await agent_row(world, robot_id)
    assert robot.is_ai and robot.password_hash is None and robot.role == "agent"

    token = await issue(supervisor, robot_id, "AI voice worker")
    response = await Client(world.app).get("/api/me", headers=bearer(token))
    me = await response.get_json()
    assert response.status_code == 200, me
    assert (me["id"], me["role"], me["queue"]) == (robot_id, "agent", "unsigned")

    user_id = await claimant_in_queue(
        world, Queue.UNSIGNED, phone="+447700931201", consents=("live_call", "automated_call")
    )
    claimed = await Client(world.app).post("/api/queue/next", headers=bearer(token))
    body = await claimed.get_json()
    assert claimed.status_code == 200, body  # no CSRF token: a bearer token is no ambient one
    assert body["task"]["user_id"] == user_id
    released = await Client(world.app).post(
        f"/api/claimants/{user_id}/release", headers=bearer(token), json={"reason": "test"}
    )
    assert released.status_code == 200

    # kept only as its hash and first characters; in clear nowhere in the table
    [stored] = await rows(world.dialler, db.api_tokens, db.api_tokens.c.agent_id == robot_id)
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert stored.prefix == token[:12] and stored.label == "AI voice worker"
    assert stored.issued_by == supervisor.staff.id and stored.last_used_at is not None
    assert all(token not in str(value) for value in stored)

    page = await (await supervisor.get(f"/supervisor/agents/{robot_id}")).get_data(as_text=True)
    assert token not in page and token[:12] in page  # shown once, then only its start

    revoked = await supervisor.post(f"/supervisor/agents/{robot_id}/tokens/{stored.id}/revoke", {})
    assert revoked.status_code == 303
    assert await me_status(world, token) == 401
    second = await Client(world.app).post("/api/queue/next", headers=bearer(token))
    assert second.status_code == 401

    audited = await audit_actions(world, robot_id)
    assert [a for a, _, _ in audited] == ["agent_created", "api_token_issued", "api_token_revoked"]
    assert audited[1][2]["prefix"] == token[:12]
    assert token not in str(audited)
    captured = capsys.readouterr()
    assert token not in caplog.text + captured.out + captured.err


async def test_a_disabled_agents_token_stops_working(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    robot_id = await created_id(supervisor, ai_form())
    token = await issue(supervisor, robot_id)
    assert await me_status(world, token) == 200

    disabled = await supervisor.post(f"/supervisor/agents/{robot_id}/disable", {})
    assert disabled.status_code == 303
    assert "done=disabled" in disabled.headers["Location"]
    assert await me_status(world, token) == 401
    assert not (await agent_row(world, robot_id)).is_active
    refused = await supervisor.post(f"/supervisor/agents/{robot_id}/tokens", {"label": "again"})
    assert refused.status_code == 403
    assert "enable it before issuing" in await refused.get_data(as_text=True)

    # enabling the account again brings its (unrevoked) tokens back
    assert (await supervisor.post(f"/supervisor/agents/{robot_id}/enable", {})).status_code == 303
    assert await me_status(world, token) == 200
    actions = [a for a, _, _ in await audit_actions(world, robot_id)]
    assert actions == [
        "agent_created",
        "api_token_issued",
        "agent_disabled",
        "staff_change_refused",
        "agent_enabled",
    ]


async def test_signing_out_with_an_issued_token_revokes_that_token_only(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    robot_id = await created_id(supervisor, ai_form())
    leaving, staying = await issue(supervisor, robot_id), await issue(supervisor, robot_id, "CI")
    response = await Client(world.app).post("/api/auth/logout", headers=bearer(leaving))
    assert response.status_code == 204
    assert await me_status(world, leaving) == 401
    assert await me_status(world, staying) == 200
    revoked = [d for a, _, d in await audit_actions(world, robot_id) if a == "api_token_revoked"]
    assert [d["by"] for d in revoked] == ["its holder signing out"]
    again = await Client(world.app).post("/api/auth/logout", headers=bearer(leaving))
    assert again.status_code == 401


async def test_tokens_that_are_not_ours_or_are_expired_are_refused(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    robot_id = await created_id(supervisor, ai_form())
    token = await issue(supervisor, robot_id)
    for forged in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # one character off
        "rmc_" + "x" * 43,
        token + "x",
        "rmc_",
    ):
        assert await me_status(world, forged) == 401, forged
    assert await me_status(world, token) == 200

    response = await supervisor.post(
        f"/supervisor/agents/{robot_id}/tokens", {"label": "one day", "expires_days": "1"}
    )
    short_lived = _TOKEN.search(await response.get_data(as_text=True))
    assert short_lived
    hashed = hashlib.sha256(short_lived.group(1).encode()).hexdigest()
    assert await me_status(world, short_lived.group(1)) == 200
    async with world.dialler.begin() as conn:
        await conn.execute(
            update(db.api_tokens)
            .where(db.api_tokens.c.token_hash == hashed)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    assert await me_status(world, short_lived.group(1)) == 401
    assert await me_status(world, token) == 200


async def test_a_person_gets_no_api_token_and_tokens_are_for_api_routes_only(
    world: World,
) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    person = await make_staff(world.dialler)
    refused = await supervisor.post(f"/supervisor/agents/{person.id}/tokens", {"label": "mine"})
    assert refused.status_code == 403
    assert "People sign in with their password" in await refused.get_data(as_text=True)
    assert await rows(world.dialler, db.api_tokens, db.api_tokens.c.agent_id == person.id) == []

    robot_id = await created_id(supervisor, ai_form())
    token = await issue(supervisor, robot_id)
    console = await Client(world.app).get("/console", headers=bearer(token))
    assert console.status_code == 401  # pages take a session, never a bearer token


async def test_revoking_another_accounts_token_is_not_found(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    first = await created_id(supervisor, ai_form())
    second = await created_id(supervisor, ai_form())
    token = await issue(supervisor, first)
    [stored] = await rows(world.dialler, db.api_tokens, db.api_tokens.c.agent_id == first)
    wrong = await supervisor.post(f"/supervisor/agents/{second}/tokens/{stored.id}/revoke", {})
    assert wrong.status_code == 404
    assert await me_status(world, token) == 200
    missing = await supervisor.post(f"/supervisor/agents/{first}/tokens/{2**62}/revoke", {})
    assert missing.status_code == 404


# --- signing someone out ----------------------------------------------------------------------


async def test_force_logout_ends_sessions_and_jwts_but_not_issued_tokens(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    person = await signed_in(world)
    jwt_response = await Client(world.app).post(
        "/api/auth/token", json={"email": person.staff.email, "password": PASSWORD}
    )
    jwt = (await jwt_response.get_json())["access_token"]
    assert await me_status(world, jwt) == 200
    assert (await person.client.get("/api/me")).status_code == 200

    response = await supervisor.post(f"/supervisor/agents/{person.staff.id}/logout", {})
    assert response.status_code == 303
    assert "done=logout&sessions=1" in response.headers["Location"]
    assert (await person.client.get("/api/me")).status_code == 401
    assert await me_status(world, jwt) == 401
    [session] = await rows(
        world.dialler, db.agent_sessions, db.agent_sessions.c.agent_id == person.staff.id
    )
    assert session.revoked_at is not None
    [(action, actor, detail)] = await audit_actions(world, person.staff.id)
    assert (action, actor, detail) == (
        "agent_signed_out", str(supervisor.staff.id), {"sessions_ended": 1},
    )  # fmt: skip
    # they sign in again as usual
    assert await sign_in(Client(world.app).raw, person.staff) == 303

    robot_id = await created_id(supervisor, ai_form())
    token = await issue(supervisor, robot_id)
    await supervisor.post(f"/supervisor/agents/{robot_id}/logout", {})
    assert await me_status(world, token) == 200  # issued tokens are revoked one by one


async def test_the_wallboards_hear_when_someone_is_signed_out_or_disabled(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    person = await signed_in(world)
    async with world.services.live().subscribe([SUPERVISORS_CHANNEL]) as subscription:
        for action in ("logout", "disable"):
            while await subscription.next(1.0) is not None:
                pass  # quiet: what the sign-ins published has been heard
            response = await supervisor.post(f"/supervisor/agents/{person.staff.id}/{action}", {})
            assert response.status_code == 303
            event = await subscription.next(5)
            assert event is not None and event.name == FLOOR_CHANGED, action


async def test_disabling_a_person_signs_them_out_and_keeps_them_out(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    person = await signed_in(world)
    response = await supervisor.post(f"/supervisor/agents/{person.staff.id}/disable", {})
    assert response.status_code == 303
    assert (await person.client.get("/api/me")).status_code == 401
    assert await sign_in(Client(world.app).raw, person.staff) == 401
    await supervisor.post(f"/supervisor/agents/{person.staff.id}/enable", {})
    assert (await person.client.get("/api/me")).status_code == 401  # old sessions stay ended
    assert await sign_in(Client(world.app).raw, person.staff) == 303


# --- nobody climbs above their station ----------------------------------------------------------


async def refused_with(response: Any, message: str) -> None:
    page = await response.get_data(as_text=True)
    assert response.status_code == 403, page
    assert message in page


async def test_a_supervisor_cannot_create_or_make_an_admin(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    form = person_form(role="admin", queue="")
    await refused_with(
        await supervisor.post("/supervisor/agents", form), "Only an admin may create an admin."
    )
    assert await rows(world.dialler, db.agents, db.agents.c.email == form["email"]) == []

    agent = await make_staff(world.dialler)
    await refused_with(
        await supervisor.post(
            f"/supervisor/agents/{agent.id}/role", {"role": "admin", "queue": ""}
        ),
        "Only an admin may make someone an admin.",
    )
    assert (await agent_row(world, agent.id)).role == "agent"
    await refused_with(
        await supervisor.post(
            f"/supervisor/agents/{supervisor.staff.id}/role", {"role": "admin", "queue": ""}
        ),
        "You cannot change your own role; ask an admin.",
    )
    [(action, actor, detail)] = await audit_actions(world, agent.id)
    assert (action, actor) == ("staff_change_refused", str(supervisor.staff.id))
    assert detail["attempted"] == "set_role_and_queue" and detail["role"] == "admin"

    admin = await signed_in(world, AgentRole.ADMIN, None)
    admin_form = person_form(role="admin", queue="")
    new_admin = await created_id(admin, admin_form)
    assert (await agent_row(world, new_admin)).role == "admin"
    promoted = await admin.post(
        f"/supervisor/agents/{agent.id}/role", {"role": "admin", "queue": ""}
    )
    assert promoted.status_code == 303
    assert (await agent_row(world, agent.id)).role == "admin"


async def test_a_supervisor_cannot_change_an_admin_nor_disable_themselves(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    admin = await signed_in(world, AgentRole.ADMIN, None)
    target = admin.staff.id
    refusal = "Only an admin may change an admin&#39;s account."
    for path, form in (
        (f"/supervisor/agents/{target}/disable", {}),
        (f"/supervisor/agents/{target}/role", {"role": "agent", "queue": "unsigned"}),
        (f"/supervisor/agents/{target}/password", {"new_password": NEW_PASSWORD}),
        (f"/supervisor/agents/{target}/password", {"generate": "1"}),
        (f"/supervisor/agents/{target}/logout", {}),
    ):
        await refused_with(await supervisor.post(path, form), refusal)
    row = await agent_row(world, target)
    assert row.is_active and row.role == "admin"
    assert (await admin.client.get("/api/me")).status_code == 200  # still signed in
    assert [a for a, _, _ in await audit_actions(world, target)] == ["staff_change_refused"] * 5

    await refused_with(
        await supervisor.post(f"/supervisor/agents/{supervisor.staff.id}/disable", {}),
        "You cannot disable your own account.",
    )
    await refused_with(
        await admin.post(f"/supervisor/agents/{target}/disable", {}),
        "You cannot disable your own account.",
    )
    assert (await agent_row(world, supervisor.staff.id)).is_active


async def test_agents_are_refused_every_agent_management_route(world: World) -> None:
    agent = await signed_in(world)
    other = await make_staff(world.dialler)
    for path in ("/supervisor/agents", f"/supervisor/agents/{other.id}", "/supervisor/agents/new"):
        assert (await agent.get(path)).status_code == 403, path
    for path, form in (
        ("/supervisor/agents", person_form()),
        (f"/supervisor/agents/{other.id}/disable", {}),
        (f"/supervisor/agents/{agent.staff.id}/role", {"role": "admin", "queue": ""}),
    ):
        assert (await agent.post(path, form)).status_code == 403, path
    assert (await agent_row(world, agent.staff.id)).role == "agent"


# --- bad input ----------------------------------------------------------------------------------


async def test_bad_input_comes_back_with_its_message(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    taken = person_form()
    await created_id(supervisor, taken)
    cases: list[tuple[dict[str, str], str, str]] = [
        (person_form(email=taken["email"].upper()), "email", "already exists"),
        (person_form(email="not-an-email"), "email", "Enter an email address like"),
        (person_form(email=""), "email", "Enter an email address."),
        (person_form(email="e" * 300 + "@example.com"), "email", "at most 254 characters"),
        (person_form(display_name=""), "display_name", "Enter a display name."),
        (person_form(display_name="N" * 121), "display_name", "at most 120 characters"),
        (person_form(display_name="Tab\there"), "display_name", "control characters"),
        (person_form(password=""), "password", "Enter a password."),
        (person_form(password="short"), "password", "at least 12 characters"),
        (person_form(password="p" * 10_000), "password", "at most 256 characters"),
        (person_form(password="aaaaaaaaaaaaaaaa"), "password", "more different characters"),
        (person_form(role="overlord"), "role", "Choose agent, supervisor or admin."),
        (person_form(queue="vip"), "queue", "Choose the unsigned, outstanding or callback"),
        (person_form(queue=""), "queue", "An agent works one queue"),
        (ai_form(queue=""), "queue", "An agent works one queue"),
    ]
    before = await _agent_count(world)
    for form, field, message in cases:
        response = await supervisor.post("/supervisor/agents", form)
        page = await response.get_data(as_text=True)
        assert response.status_code == 422, (field, form.get(field, "")[:40], page[:200])
        assert f'id="{field}-error"' in page and message in page, (field, message)
        if field != "password" and form.get(field):
            assert f'value="{form[field][:50]}' in page or field in ("role", "queue")
        assert 'name="password"' not in page or 'value="violet' not in page  # never echoed
    assert await _agent_count(world) == before


async def test_nul_bytes_and_oversized_fields_never_reach_the_database(world: World) -> None:
    """NUL is refused at the edge for every form (web/input_guard.py, 400 naming the field);
    everything else is the form's to re-render."""
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    target = await make_staff(world.dialler)
    robot_id = await created_id(supervisor, ai_form())
    before = await _agent_count(world)
    for path, form in (
        *(("/supervisor/agents", person_form(**{name: "a\x00b"}))
          for name in ("email", "display_name", "role", "queue", "password")),
        (f"/supervisor/agents/{target.id}/role", {"role": "agent\x00", "queue": "unsigned"}),
        (f"/supervisor/agents/{target.id}/password", {"new_password": "x\x00" * 8}),
        (f"/supervisor/agents/{robot_id}/tokens", {"label": "nul\x00"}),
    ):  # fmt: skip
        response = await supervisor.post(path, form)
        assert response.status_code == 400, (path, form)
    assert await _agent_count(world) == before

    for path, form, field, message in (
        (f"/supervisor/agents/{target.id}/role", {"role": "root", "queue": "x" * 5000},
         "role-role", "Choose agent, supervisor or admin."),
        (f"/supervisor/agents/{target.id}/password", {"new_password": "short"},
         "password-new_password", "at least 12 characters"),
        (f"/supervisor/agents/{target.id}/password", {"new_password": ""},
         "password-new_password", "Enter a password."),
        (f"/supervisor/agents/{robot_id}/tokens", {"label": "L" * 81},
         "token-label", "at most 80 characters"),
        (f"/supervisor/agents/{robot_id}/tokens", {"label": ""},
         "token-label", "Say what the token is for"),
        (f"/supervisor/agents/{robot_id}/tokens", {"label": "ok", "expires_days": "9" * 30},
         "token-expires_days", "A whole number of days"),
        (f"/supervisor/agents/{robot_id}/tokens", {"label": "ok", "expires_days": "0"},
         "token-expires_days", "A whole number of days"),
    ):  # fmt: skip
        response = await supervisor.post(path, form)
        page = await response.get_data(as_text=True)
        assert response.status_code == 422, (path, page[:300])
        assert f'id="{field}-error"' in page and message in page, (path, field)
    assert await rows(world.dialler, db.api_tokens, db.api_tokens.c.agent_id == robot_id) == []
    assert (await agent_row(world, target.id)).role == "agent"


async def test_unknown_accounts_and_pages(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    for path in (f"/supervisor/agents/{2**62}", f"/supervisor/agents/{2**63}"):
        assert (await supervisor.get(path)).status_code == 404
    assert (await supervisor.post(f"/supervisor/agents/{2**62}/disable", {})).status_code == 404
    assert (await supervisor.get("/supervisor/agents?page=" + "9" * 40)).status_code == 404
    for query in ("page=0", "page=x", "page=-1", "page=2"):
        assert (await supervisor.get(f"/supervisor/agents?{query}")).status_code == 200, query


# --- history ------------------------------------------------------------------------------------


async def test_session_and_state_history_is_paged(world: World) -> None:
    supervisor = await signed_in(world, AgentRole.SUPERVISOR, None)
    person = await make_staff(world.dialler)
    for _ in range(21):
        client = Client(world.app)
        login_csrf = await csrf_from(client.raw, "/login")
        signed = await client.post(
            "/login",
            form={"email": person.email, "password": PASSWORD, "csrf_token": login_csrf},
            headers={"User-Agent": "HistoryTest/1.0"},
        )
        assert signed.status_code == 303
    csrf = await csrf_from(client.raw, "/console")
    paused = await client.put(
        "/api/agents/me/state",
        json={"state": "paused", "reason": "Coaching"},
        headers={"X-CSRF-Token": csrf},
    )
    assert paused.status_code == 200

    first = await (await supervisor.get(f"/supervisor/agents/{person.id}")).get_data(as_text=True)
    sessions = first.split('id="sessions-table"')[1].split("</table>")[0]
    assert sessions.count("<tr>") == 1 + 20  # the header and a page of 20
    assert "<td>10.88." in sessions  # the address each signed in from, and the browser
    assert "HistoryTest/1.0" in sessions
    assert "?sessions_page=2&amp;states_page=1" in first
    assert "Coaching" in first and "Paused" in first

    second = await (
        await supervisor.get(f"/supervisor/agents/{person.id}?sessions_page=2")
    ).get_data(as_text=True)
    older = second.split('id="sessions-table"')[1].split("</table>")[0]
    assert older.count("<tr>") == 1 + 1


async def _agent_count(w: World) -> int:
    async with w.dialler.connect() as conn:
        return int((await conn.scalar(select(func.count()).select_from(db.agents))) or 0)
