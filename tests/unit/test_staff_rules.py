"""Who may manage whom (no one climbs to admin but through an admin, no one disables
themselves or changes their own role), and what a new member's fields must look like."""

from __future__ import annotations

import pytest

from domain.staff_rules import (
    DISPLAY_NAME_MAX,
    EMAIL_MAX,
    OPERATOR,
    PASSWORD_MAX,
    PASSWORD_MIN,
    TOKEN_LABEL_MAX,
    Actor,
    InvalidStaffInput,
    Member,
    NewMember,
    refuse_create,
    refuse_disable,
    refuse_manage,
    refuse_password_reset,
    refuse_role_and_queue,
    refuse_token,
    validate_new_member,
    validate_role_and_queue,
    validate_token_request,
)
from schemas.enums import AgentRole, Queue

A, S, AD = AgentRole.AGENT, AgentRole.SUPERVISOR, AgentRole.ADMIN
SUPERVISOR = Actor(S, 10)
ADMIN = Actor(AD, 20)
AGENT = Actor(A, 30)
GOOD_PASSWORD = "pale green kettle 42"


def member(
    role: AgentRole, member_id: int = 99, *, ai: bool = False, active: bool = True
) -> Member:
    return Member(member_id, role, ai, active)


# --- permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(AgentRole))
def test_an_agent_manages_no_one(role: AgentRole) -> None:
    assert refuse_create(AGENT, role) == "Only supervisors and admins manage staff."
    assert refuse_manage(AGENT, member(role)) == "Only supervisors and admins manage staff."
    assert refuse_disable(AGENT, member(role)) is not None
    assert refuse_token(AGENT, member(A, ai=True)) is not None


def test_only_an_admin_creates_an_admin() -> None:
    assert refuse_create(SUPERVISOR, AD) == "Only an admin may create an admin."
    assert refuse_create(SUPERVISOR, S) is None
    assert refuse_create(SUPERVISOR, A) is None
    assert refuse_create(ADMIN, AD) is None
    assert refuse_create(OPERATOR, AD) is None  # the CLI's operator acts as an admin


def test_a_supervisor_cannot_make_anyone_an_admin() -> None:
    for target in (member(A), member(S)):
        assert (
            refuse_role_and_queue(SUPERVISOR, target, AD, None)
            == "Only an admin may make someone an admin."
        )
        assert refuse_role_and_queue(ADMIN, target, AD, None) is None


def test_a_supervisor_cannot_touch_an_admin() -> None:
    admin = member(AD)
    refusal = "Only an admin may change an admin's account."
    assert refuse_manage(SUPERVISOR, admin) == refusal
    assert refuse_disable(SUPERVISOR, admin) == refusal
    assert refuse_password_reset(SUPERVISOR, admin) == refusal
    assert refuse_role_and_queue(SUPERVISOR, admin, A, Queue.UNSIGNED) == refusal  # demoting
    assert refuse_role_and_queue(SUPERVISOR, admin, AD, Queue.CALLBACK) == refusal  # its queue
    assert refuse_disable(ADMIN, admin) is None
    assert refuse_role_and_queue(ADMIN, admin, S, None) is None


def test_a_supervisor_manages_agents_and_other_supervisors() -> None:
    for target in (member(A), member(S)):
        assert refuse_manage(SUPERVISOR, target) is None
        assert refuse_disable(SUPERVISOR, target) is None
        assert refuse_password_reset(SUPERVISOR, target) is None
    assert refuse_role_and_queue(SUPERVISOR, member(S), A, Queue.OUTSTANDING) is None
    assert refuse_role_and_queue(SUPERVISOR, member(A), S, None) is None


def test_nobody_disables_themselves_or_changes_their_own_role() -> None:
    me_supervisor = member(S, SUPERVISOR.id or 0)
    assert refuse_disable(SUPERVISOR, me_supervisor) == "You cannot disable your own account."
    assert (
        refuse_role_and_queue(SUPERVISOR, me_supervisor, AD, None)
        == "You cannot change your own role; ask an admin."
    )
    me_admin = member(AD, ADMIN.id or 0)
    assert refuse_disable(ADMIN, me_admin) == "You cannot disable your own account."
    assert refuse_role_and_queue(ADMIN, me_admin, S, None) is not None  # the last admin stays
    # their own queue is theirs to change; so is signing themselves out everywhere
    assert refuse_role_and_queue(SUPERVISOR, me_supervisor, S, Queue.CALLBACK) is None
    assert refuse_manage(SUPERVISOR, me_supervisor) is None


def test_every_account_keeps_its_shape() -> None:
    assert (
        refuse_role_and_queue(ADMIN, member(S), A, None) == "An agent works one queue: choose it."
    )
    ai = member(A, ai=True)
    assert refuse_role_and_queue(ADMIN, ai, S, None) == "An AI agent can only have the agent role."
    assert refuse_role_and_queue(ADMIN, ai, A, Queue.CALLBACK) is None


def test_api_tokens_are_for_active_ai_agents_only() -> None:
    assert refuse_token(SUPERVISOR, member(A, ai=True)) is None
    assert "People sign in with their password" in (refuse_token(SUPERVISOR, member(A)) or "")
    assert "enable it" in (refuse_token(SUPERVISOR, member(A, ai=True, active=False)) or "")
    assert refuse_password_reset(SUPERVISOR, member(A, ai=True)) is not None


# --- input ------------------------------------------------------------------------------------


def new(**changes: object) -> NewMember:
    fields: dict[str, object] = {
        "email": "  New.Person@Example.co.uk ",
        "display_name": " New Person ",
        "role": "agent",
        "queue": "unsigned",
        "is_ai": False,
        "password": GOOD_PASSWORD,
    } | changes
    return validate_new_member(**fields)  # type: ignore[arg-type]


def refused_fields(**changes: object) -> dict[str, str]:
    with pytest.raises(InvalidStaffInput) as refused:
        new(**changes)
    return refused.value.fields


def test_a_valid_person_is_normalised() -> None:
    person = new()
    assert person == NewMember(
        "new.person@example.co.uk", "New Person", A, Queue.UNSIGNED, False, GOOD_PASSWORD
    )
    assert new(role="supervisor", queue="").queue is None


def test_an_ai_agent_has_no_password_and_the_agent_role() -> None:
    assert new(is_ai=True, password=None).password is None
    assert "password" in refused_fields(is_ai=True, password=GOOD_PASSWORD)
    assert refused_fields(is_ai=True, password=None, role="supervisor", queue="")["role"] == (
        "An AI agent can only have the agent role."
    )


@pytest.mark.parametrize(
    ("email", "message"),
    [
        ("", "Enter an email address."),
        ("no-at-sign.example.com", "Enter an email address like name@example.co.uk."),
        ("a@b", "Enter an email address like name@example.co.uk."),
        ("two@@example.com", "Enter an email address like name@example.co.uk."),
        ("sp ace@example.com", "Enter an email address like name@example.co.uk."),
        ("nul\x00@example.com", "May not hold control characters (NUL, tab, line breaks...)."),
        ("x" * 65 + "@example.com", f"An email address is at most {EMAIL_MAX} characters."),
        ("a@" + "b" * 250 + ".com", f"An email address is at most {EMAIL_MAX} characters."),
    ],
)
def test_bad_emails(email: str, message: str) -> None:
    assert refused_fields(email=email) == {"email": message}


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("", "Enter a password."),
        (None, "Enter a password."),
        ("short1!", f"at least {PASSWORD_MIN}"),
        ("x" * (PASSWORD_MAX + 1), f"at most {PASSWORD_MAX}"),
        ("aaaaaaaaaaaaaaaa", "more different characters"),
        ("abababab12121212", "more different characters"),
        ("new.person@example.co.uk!", "may not contain the email"),
        ("pale green\x00kettle", "control characters"),
    ],
)
def test_weak_or_bad_passwords(password: str | None, fragment: str) -> None:
    assert fragment in refused_fields(password=password)["password"]


def test_a_password_is_kept_exactly_as_typed() -> None:
    assert new(password="  spaces count too  ").password == "  spaces count too  "


def test_every_bad_field_is_named_at_once() -> None:
    fields = refused_fields(
        email="nope", display_name=" ", role="overlord", queue="everything", password="x"
    )
    assert set(fields) == {"email", "display_name", "role", "queue", "password"}


def test_names_roles_and_queues() -> None:
    assert "at most" in refused_fields(display_name="n" * (DISPLAY_NAME_MAX + 1))["display_name"]
    assert "control characters" in refused_fields(display_name="Tab\there")["display_name"]
    assert refused_fields(role="ADMIN") == {"role": "Choose agent, supervisor or admin."}
    assert refused_fields(queue="") == {"queue": "An agent works one queue: choose it."}
    assert validate_role_and_queue("supervisor", "") == (S, None)
    with pytest.raises(InvalidStaffInput) as bad:
        validate_role_and_queue("root", "vip")
    assert set(bad.value.fields) == {"role", "queue"}


@pytest.mark.parametrize(
    ("label", "days", "field"),
    [
        ("", "", "label"),
        ("   ", "", "label"),
        ("l" * (TOKEN_LABEL_MAX + 1), "", "label"),
        ("nul\x00", "", "label"),
        ("AI voice", "0", "expires_days"),
        ("AI voice", "3651", "expires_days"),
        ("AI voice", "-5", "expires_days"),
        ("AI voice", "9" * 40, "expires_days"),
        ("AI voice", "٣", "expires_days"),  # an Arabic-Indic digit three
    ],
)
def test_bad_token_requests(label: str, days: str, field: str) -> None:
    with pytest.raises(InvalidStaffInput) as refused:
        validate_token_request(label, days)
    assert set(refused.value.fields) == {field}


def test_token_requests() -> None:
    assert validate_token_request(" AI voice worker ", "") == ("AI voice worker", None)
    assert validate_token_request("CRM sync", " 30 ") == ("CRM sync", 30)
