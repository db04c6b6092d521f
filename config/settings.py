"""One typed settings object for every process.

Every variable is documented in `env.template`. Processes call `load_settings()` once at
start; a missing or malformed value raises `ConfigError` whose message is one line naming
the variable, so an operator sees exactly what to fix.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    AnyHttpUrl,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict


class CdcSource(StrEnum):
    BINLOG = "binlog"
    SQS = "sqs"
    NONE = "none"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


# Only these environments may run on the published development defaults (the values in
# env.template and below) and on the simulated Twilio and local email outbox.
DEVELOPMENT_ENVIRONMENTS = frozenset({Environment.DEVELOPMENT, Environment.TEST})
MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 8  # "aaaa..." or "0101..." is long but guessable
# Words of the placeholders this repository publishes (env.template, docker-compose.yml)
_PLACEHOLDER_WORDS = ("change-me", "changeme", "dev-only", "compose-demo", "example")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _require_scheme(value: str, schemes: tuple[str, ...], what: str) -> str:
    if not value.startswith(tuple(f"{s}://" for s in schemes)):
        raise ValueError(f"must be a {what} URL starting with one of: {', '.join(schemes)}://")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # `KEY=` in .env means "use the default", so env.template can list every variable
        env_ignore_empty=True,
    )

    # Production unless said otherwise: a deployment that forgets to say is held to real
    # secrets instead of quietly running on the published ones. `dialler dev` and the
    # tests say development / test themselves.
    environment: Environment = Environment.PRODUCTION
    log_level: str = "INFO"

    # Databases and cache
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/dialler"
    replica_database_url: str = "mysql+aiomysql://root@127.0.0.1:3307/rmc_main"
    redis_url: str = "redis://127.0.0.1:6379/0"

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_tls: bool = False
    temporal_tls_cert_path: Path | None = None
    temporal_tls_key_path: Path | None = None
    temporal_api_key: SecretStr | None = None
    temporal_ui_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8233")
    temporal_task_queue: str = "outreach"
    # Workflows the outreach worker keeps in memory between tasks (see workers/outreach.py)
    worker_max_cached_workflows: int = Field(default=50_000, ge=1)

    # The dialler's business rules (scoring, contact policy, calling windows); TOML
    rules_file: Path = Path(__file__).resolve().parent / "dialler_rules.toml"

    # How long an agent may hold a claimed task without recording an outcome
    claim_lease_minutes: int = Field(default=20, ge=1, le=240)

    # Web app
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)
    public_base_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    secret_key: SecretStr = SecretStr("dev-only-secret-key-change-me-in-production-0123456789")
    jwt_secret: SecretStr = SecretStr("dev-only-jwt-secret-change-me-in-production-0123456789")
    session_idle_minutes: int = Field(default=30, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)
    cookie_secure: bool = False
    # Default limits on every route, per signed-in session or token (per address for anyone
    # else), and a ceiling per address (an office of agents shares one); routes such as
    # sign-in add tighter ones
    rate_limit_per_second: int = Field(default=20, ge=1)
    rate_limit_per_minute: int = Field(default=600, ge=1)
    rate_limit_address_per_minute: int = Field(default=20_000, ge=1)
    # Agent console: seconds of wrap-up after an outcome before the next call (0: none)
    wrap_up_seconds: int = Field(default=30, ge=0, le=600)

    # Twilio (simulated provider when the account SID is empty)
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_api_key_sid: str = ""
    twilio_api_key_secret: SecretStr = SecretStr("")
    twilio_twiml_app_sid: str = ""
    twilio_from_number: str = "+447700900000"
    twilio_base_url: AnyHttpUrl | None = None

    # Email (local outbox when the key is empty)
    sendgrid_api_key: SecretStr = SecretStr("")
    sendgrid_host: AnyHttpUrl | None = None
    email_from: str = "support@resolvemyclaim.example"
    email_outbox_dir: Path = Path(".dev/outbox")

    # AI agents (issue 13): any OpenAI-compatible server. With no model, the AI worker does
    # not start and every contact is a person's.
    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: AnyHttpUrl | None = None
    openai_model: str = ""
    openai_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    ai_voice_enabled: bool = True
    ai_sms_enabled: bool = True
    # the `agents` row (kind AI) the AI worker works as; created by `dialler agents add --ai`
    ai_agent_email: str = "ai-agent@rmc.example"
    ai_task_queue: str = "ai-agents"

    # Change data capture
    cdc_source: CdcSource = CdcSource.BINLOG
    # binlog: the server to read (user with REPLICATION SLAVE, BINLOG MONITOR); empty: the replica
    cdc_binlog_url: str = ""
    cdc_server_id: int = Field(default=4201, ge=1, le=4_294_967_295)
    # claimants are spread over this many ordered lanes; each holds at most this many units
    cdc_lanes: int = Field(default=16, ge=1, le=256)
    cdc_lane_depth: int = Field(default=100, ge=1, le=10_000)
    aws_region: str = "eu-west-2"
    aws_access_key_id: str = ""
    aws_secret_access_key: SecretStr = SecretStr("")
    aws_endpoint_url: AnyHttpUrl | None = None
    sqs_queue_url: str = ""
    sqs_wait_seconds: int = Field(default=20, ge=0, le=20)
    sqs_visibility_timeout: int = Field(default=120, ge=1, le=43_200)

    # Call recordings (issue 11): a copy kept in this S3 bucket (aioboto3, the AWS settings
    # above) when set; the simulated telephony writes its recordings under the folder
    recordings_bucket: str = ""
    recordings_dir: Path = Path(".dev/recordings")

    # Claimant context cache (Redis) and the hourly warming of the top of each queue
    context_cache_ttl_seconds: int = Field(default=900, ge=1)
    cache_warm_per_queue: int = Field(default=200, ge=0)

    # Retention of the daily clean-up (days)
    magic_link_retention_days: int = Field(default=30, ge=1)
    session_retention_days: int = Field(default=30, ge=1)
    dead_letter_retention_days: int = Field(default=30, ge=1)

    # Main app hand-off (magic links)
    main_app_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8080")
    magic_link_secret: SecretStr = SecretStr("dev-only-magic-link-secret-change-me-0123456789")
    magic_link_ttl_minutes: int = Field(default=60, ge=1)

    # Local development
    dev_state_dir: Path = Path(".dev")
    # `dialler dev` runs a MariaDB with the binlog on this port when the replica URL points at it
    local_replica_port: int = Field(default=3307, ge=1, le=65535)
    demo_password: SecretStr = SecretStr("demo-pass-2026")

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        return _require_scheme(value, ("postgresql+asyncpg", "postgresql"), "PostgreSQL")

    @field_validator("replica_database_url")
    @classmethod
    def _mysql_url(cls, value: str) -> str:
        return _require_scheme(value, ("mysql+aiomysql", "mysql"), "MySQL/MariaDB")

    @field_validator("cdc_binlog_url")
    @classmethod
    def _binlog_url(cls, value: str) -> str:
        return value and _require_scheme(value, ("mysql+aiomysql", "mysql"), "MySQL/MariaDB")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return _require_scheme(value, ("redis", "rediss"), "Redis")

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("must be host:port, e.g. 127.0.0.1:7233")
        return value

    @field_validator("secret_key", "jwt_secret", "magic_link_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _real_secrets_outside_development(self) -> Settings:
        """Production refuses defaults: a deployment that forgets a secret would otherwise
        accept tokens anyone who reads this repository can sign, and a missing Twilio or
        SendGrid credential would quietly switch to the simulated provider."""
        if self.environment in DEVELOPMENT_ENVIRONMENTS:
            return self
        problem = production_secret_problem(self)
        if problem:
            raise ValueError(
                f"{problem} (ENVIRONMENT={self.environment.value}; "
                "for local development set ENVIRONMENT=development)"
            )
        return self

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token.get_secret_value())

    @property
    def ai_configured(self) -> bool:
        """A model is named: the AI worker may start (the key may be empty for a local,
        keyless OpenAI-compatible server)."""
        return bool(self.openai_model.strip())

    @property
    def sendgrid_enabled(self) -> bool:
        return bool(self.sendgrid_api_key.get_secret_value())

    @property
    def async_database_url(self) -> str:
        return _with_driver(self.database_url, "postgresql", "asyncpg")

    @property
    def async_replica_url(self) -> str:
        return _with_driver(self.replica_database_url, "mysql", "aiomysql")

    @property
    def binlog_url(self) -> str:
        """The server whose binlog the CDC worker reads: CDC_BINLOG_URL, else the replica."""
        return self.cdc_binlog_url or self.replica_database_url


def _published_default(name: str) -> str:
    default = Settings.model_fields[name].default
    return default.get_secret_value() if isinstance(default, SecretStr) else str(default)


def _weakness(value: str, published: str) -> str | None:
    if not value:
        return "is required outside development"
    if value == published or any(word in value.lower() for word in _PLACEHOLDER_WORDS):
        return "is a published default or placeholder; generate a secret of your own"
    if len(value) < MIN_SECRET_LENGTH:
        return f"must be at least {MIN_SECRET_LENGTH} characters"
    if len(set(value)) < MIN_DISTINCT_CHARACTERS:
        return "is too weak (too few distinct characters); generate a random secret"
    return None


# Identifiers Twilio issues: a two-letter prefix and 32 hexadecimal digits
_TWILIO_SIDS = {
    "twilio_account_sid": "AC",
    "twilio_api_key_sid": "SK",
    "twilio_twiml_app_sid": "AP",
}


def production_secret_problem(settings: Settings) -> str | None:
    """`NAME: what is wrong` for the first secret or credential unfit for production."""
    secrets = {
        "secret_key": settings.secret_key,
        "jwt_secret": settings.jwt_secret,
        "magic_link_secret": settings.magic_link_secret,
        "twilio_auth_token": settings.twilio_auth_token,
        "twilio_api_key_secret": settings.twilio_api_key_secret,
        "sendgrid_api_key": settings.sendgrid_api_key,
    }
    for name, secret in secrets.items():
        weakness = _weakness(secret.get_secret_value(), _published_default(name))
        if weakness:
            return f"{name.upper()}: {weakness}"
    if not settings.sendgrid_api_key.get_secret_value().startswith("SG."):
        return "SENDGRID_API_KEY: must be a SendGrid API key (starts with SG.)"
    for name, prefix in _TWILIO_SIDS.items():
        sid = getattr(settings, name)
        if not sid:
            return f"{name.upper()}: is required outside development"
        if len(sid) != 34 or not sid.startswith(prefix) or not _is_hex(sid[2:]):
            return f"{name.upper()}: must be a Twilio SID ({prefix} and 32 hexadecimal digits)"
    return None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _with_driver(url: str, scheme: str, driver: str) -> str:
    """Accept plain `scheme://` URLs too: the async driver is the only one the app uses."""
    bare = f"{scheme}://"
    return f"{scheme}+{driver}://{url.removeprefix(bare)}" if url.startswith(bare) else url


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a rule over several settings: its message names the variable
        return message
    field = ".".join(str(part) for part in first["loc"])
    value = first.get("input")
    secret = any(word in field for word in ("secret", "token", "key", "password"))
    shown = "" if secret or value is None or isinstance(value, dict) else f" (got {value!r})"
    return f"{field.upper()}: {message}{shown}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; raise ConfigError naming the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(f"configuration error: {_describe(error)}") from None
