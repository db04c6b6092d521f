"""Who may manage which member of staff, and what a member's details must look like.

Supervisors and admins manage staff (people and AI agents); the CLI's operator acts as an
admin (they hold the database already). The rules that stop anyone climbing above their
station:

- only an admin creates an admin, makes anyone an admin, or changes an admin in any way
  (role, queue, password, disabling, signing them out, their API tokens);
- nobody changes their own role or disables their own account (a supervisor cannot make
  themselves admin, and the last admin cannot lock everyone out);
- an AI agent has the agent role, works one queue, has no password and signs in with an
  API token; API tokens are for AI agents and integrations only: people sign in with their
  password (and get short-lived tokens from `POST /api/auth/token`).

Each `refuse_*` answers None (allowed) or the reason, worded for the person refused.
`validate_*` read raw form or command-line text and raise `InvalidStaffInput` naming every
field that is wrong. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.enums import AgentRole, Queue

MANAGERS = frozenset({AgentRole.SUPERVISOR, AgentRole.ADMIN})

EMAIL_MAX = 254  # agents.email
EMAIL_LOCAL_MAX = 64  # RFC 5321
DISPLAY_NAME_MAX = 120  # agents.display_name
PASSWORD_MIN = 12
PASSWORD_MAX = 256  # a pass phrase fits; a megabyte pasted by mistake does not
PASSWORD_MIN_DISTINCT = 5
TOKEN_LABEL_MAX = 80  # api_tokens.label
TOKEN_DAYS_MAX = 3650
AI_CREDENTIALS_HINT = "An AI agent has no password: issue it an API token."

# Control characters (C0, DEL, C1) and lone surrogates: nothing a name or an address holds,
# and PostgreSQL refuses NUL outright. Checked here too, not only at the web edge, because
# the CLI reads the same fields.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)


class InvalidStaffInput(ValueError):
    """Field name -> what is wrong with it, for the form (or the command line)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in supervisor or admin (`id`), or the CLI's operator."""

    role: AgentRole
    id: int | None = None  # None: the operator at the command line


OPERATOR = Actor(AgentRole.ADMIN)


@dataclass(frozen=True)
class Member:
    """The member of staff acted on, as they are now."""

    id: int
    role: AgentRole
    is_ai: bool
    is_active: bool


@dataclass(frozen=True)
class NewMember:
    email: str
    display_name: str
    role: AgentRole
    queue: Queue | None
    is_ai: bool
    password: str | None  # None for an AI agent


# --- permissions ------------------------------------------------------------------------------


def refuse_create(actor: Actor, role: AgentRole) -> str | None:
    if actor.role not in MANAGERS:
        return "Only supervisors and admins manage staff."
    if role is AgentRole.ADMIN and actor.role is not AgentRole.ADMIN:
        return "Only an admin may create an admin."
    return None


def refuse_manage(actor: Actor, target: Member) -> str | None:
    """Anything done to `target`: the other rules start here."""
    if actor.role not in MANAGERS:
        return "Only supervisors and admins manage staff."
    if target.role is AgentRole.ADMIN and actor.role is not AgentRole.ADMIN:
        return "Only an admin may change an admin's account."
    return None


def refuse_role_and_queue(
    actor: Actor, target: Member, role: AgentRole, queue: Queue | None
) -> str | None:
    refused = refuse_manage(actor, target)
    if refused:
        return refused
    if role is not target.role:
        if actor.id is not None and actor.id == target.id:
            return "You cannot change your own role; ask an admin."
        if role is AgentRole.ADMIN and actor.role is not AgentRole.ADMIN:
            return "Only an admin may make someone an admin."
    return refuse_shape(role, queue, is_ai=target.is_ai)


def refuse_disable(actor: Actor, target: Member) -> str | None:
    refused = refuse_manage(actor, target)
    if refused:
        return refused
    if actor.id is not None and actor.id == target.id:
        return "You cannot disable your own account."
    return None


def refuse_password_reset(actor: Actor, target: Member) -> str | None:
    refused = refuse_manage(actor, target)
    if refused:
        return refused
    if target.is_ai:
        return AI_CREDENTIALS_HINT
    return None


def refuse_token(actor: Actor, target: Member) -> str | None:
    """Issuing an API token to `target` (revoking one only needs `refuse_manage`)."""
    refused = refuse_manage(actor, target)
    if refused:
        return refused
    if not target.is_ai:
        return (
            "API tokens are for AI agents and integrations. People sign in with their "
            "password (POST /api/auth/token gives them a short-lived token)."
        )
    if not target.is_active:
        return "This account is disabled: enable it before issuing a token."
    return None


def refuse_shape(role: AgentRole, queue: Queue | None, *, is_ai: bool) -> str | None:
    """What every account must look like, whoever sets it."""
    if is_ai and role is not AgentRole.AGENT:
        return "An AI agent can only have the agent role."
    if role is AgentRole.AGENT and queue is None:
        return "An agent works one queue: choose it."
    return None


# --- input ------------------------------------------------------------------------------------


def _single_line(value: str, name: str, errors: dict[str, str]) -> bool:
    if _CONTROL.search(value):
        errors[name] = "May not hold control characters (NUL, tab, line breaks...)."
        return False
    return True


def normalise_email(raw: str, errors: dict[str, str]) -> str:
    """The address as it is stored and signed in with (trimmed, lower case)."""
    email = raw.strip().lower()
    if not _single_line(email, "email", errors):
        return email
    local = email.rpartition("@")[0]
    if not email:
        errors["email"] = "Enter an email address."
    elif len(email) > EMAIL_MAX or len(local) > EMAIL_LOCAL_MAX:
        errors["email"] = f"An email address is at most {EMAIL_MAX} characters."
    elif not _EMAIL.fullmatch(email):
        errors["email"] = "Enter an email address like name@example.co.uk."
    return email


def check_display_name(raw: str, errors: dict[str, str]) -> str:
    name = raw.strip()
    if not _single_line(name, "display_name", errors):
        return name
    if not name:
        errors["display_name"] = "Enter a display name."
    elif len(name) > DISPLAY_NAME_MAX:
        errors["display_name"] = f"A display name is at most {DISPLAY_NAME_MAX} characters."
    return name


def parse_role(raw: str, errors: dict[str, str]) -> AgentRole:
    try:
        return AgentRole(raw.strip())
    except ValueError:
        errors["role"] = "Choose agent, supervisor or admin."
        return AgentRole.AGENT


def parse_queue(raw: str, errors: dict[str, str]) -> Queue | None:
    value = raw.strip()
    if not value:
        return None
    try:
        return Queue(value)
    except ValueError:
        errors["queue"] = "Choose the unsigned, outstanding or callback queue."
        return None


def check_password(
    password: str, email: str, errors: dict[str, str], name: str = "password"
) -> str:
    """A person's password: long enough to resist guessing, not the email. Kept exactly as
    typed (no trimming): it is what they will type again."""
    if not password:
        errors[name] = "Enter a password."
    elif _CONTROL.search(password):
        errors[name] = "A password may not hold control characters."
    elif len(password) < PASSWORD_MIN:
        errors[name] = f"A password is at least {PASSWORD_MIN} characters."
    elif len(password) > PASSWORD_MAX:
        errors[name] = f"A password is at most {PASSWORD_MAX} characters."
    elif len(set(password)) < PASSWORD_MIN_DISTINCT:
        errors[name] = "Too easy to guess: use more different characters."
    elif email and email.lower() in password.lower():
        errors[name] = "A password may not contain the email address."
    return password


def validate_new_member(
    *,
    email: str,
    display_name: str,
    role: str,
    queue: str,
    is_ai: bool,
    password: str | None,
) -> NewMember:
    """The new member these fields describe; `InvalidStaffInput` naming every bad field."""
    errors: dict[str, str] = {}
    clean_email = normalise_email(email, errors)
    name = check_display_name(display_name, errors)
    chosen_role = parse_role(role, errors)
    chosen_queue = parse_queue(queue, errors)
    if is_ai:
        if password:
            errors["password"] = AI_CREDENTIALS_HINT
    else:
        check_password(password or "", clean_email, errors)
    if "role" not in errors and "queue" not in errors:
        shape = refuse_shape(chosen_role, chosen_queue, is_ai=is_ai)
        if shape:
            errors["role" if is_ai and chosen_role is not AgentRole.AGENT else "queue"] = shape
    if errors:
        raise InvalidStaffInput(errors)
    return NewMember(
        clean_email, name, chosen_role, chosen_queue, is_ai, None if is_ai else password
    )


def validate_role_and_queue(role: str, queue: str) -> tuple[AgentRole, Queue | None]:
    errors: dict[str, str] = {}
    chosen_role, chosen_queue = parse_role(role, errors), parse_queue(queue, errors)
    if errors:
        raise InvalidStaffInput(errors)
    return chosen_role, chosen_queue


def validate_token_request(label: str, days: str) -> tuple[str, int | None]:
    """An API token's label and lifetime in days (blank: until revoked)."""
    errors: dict[str, str] = {}
    clean = label.strip()
    if _single_line(clean, "label", errors):
        if not clean:
            errors["label"] = "Say what the token is for (e.g. the AI voice worker)."
        elif len(clean) > TOKEN_LABEL_MAX:
            errors["label"] = f"A label is at most {TOKEN_LABEL_MAX} characters."
    lifetime: int | None = None
    raw_days = days.strip()
    if raw_days:
        if not (raw_days.isascii() and raw_days.isdigit()) or len(raw_days) > 4:
            errors["expires_days"] = f"A whole number of days, 1 to {TOKEN_DAYS_MAX}."
        else:
            lifetime = int(raw_days)
            if not 1 <= lifetime <= TOKEN_DAYS_MAX:
                errors["expires_days"] = f"A whole number of days, 1 to {TOKEN_DAYS_MAX}."
    if errors:
        raise InvalidStaffInput(errors)
    return clean, lifetime
