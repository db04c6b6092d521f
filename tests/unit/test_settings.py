"""Settings: defaults work locally, and a bad value fails with one line naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.logging import scrub
from config.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    # The local defaults are for development; tests of production set it themselves.
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.chdir(tmp_path)  # no stray .env from the developer's checkout


def test_a_deployment_that_names_no_environment_is_held_to_production(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forgetting ENVIRONMENT must not mean running on the published secrets."""
    monkeypatch.delenv("ENVIRONMENT")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith("configuration error: SECRET_KEY: is a published default")
    assert "ENVIRONMENT=production" in message and "ENVIRONMENT=development" in message


def test_defaults_point_at_the_local_services() -> None:
    settings = load_settings()
    assert settings.async_database_url.startswith("postgresql+asyncpg://")
    assert settings.async_replica_url.startswith("mysql+aiomysql://")
    assert settings.temporal_address == "127.0.0.1:7233"
    assert not settings.twilio_enabled


def test_env_template_documents_every_setting_and_loads() -> None:
    template = (ROOT / "env.template").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", template, re.MULTILINE))
    assert documented == {name.upper() for name in Settings.model_fields}
    env_file = Path(".env")
    env_file.write_text(template)
    assert load_settings().web_port == 8000


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x@y/z", "DATABASE_URL: must be a PostgreSQL URL"),
        ("REPLICA_DATABASE_URL", "postgresql://x/y", "REPLICA_DATABASE_URL: must be a MySQL"),
        ("REDIS_URL", "http://localhost", "REDIS_URL: must be a Redis URL"),
        ("TEMPORAL_ADDRESS", "localhost", "TEMPORAL_ADDRESS: must be host:port"),
        ("WEB_PORT", "eighty", "WEB_PORT: Input should be a valid integer"),
        ("WEB_PORT", "70000", "WEB_PORT: Input should be less than or equal to 65535"),
        ("CDC_SOURCE", "kafka", "CDC_SOURCE: Input should be 'binlog', 'sqs' or 'none'"),
        ("COOKIE_SECURE", "perhaps", "COOKIE_SECURE: Input should be a valid boolean"),
        ("MAIN_APP_URL", "not a url", "MAIN_APP_URL: Input should be a valid URL"),
    ],
)
def test_malformed_setting_names_the_variable_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message


def test_short_secret_is_rejected_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "hunter2")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "SECRET_KEY: must be at least 32 characters" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_plain_scheme_urls_get_the_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db:5432/dialler")
    monkeypatch.setenv("REPLICA_DATABASE_URL", "mysql://ro:pw@replica:3306/main")
    settings = load_settings()
    assert settings.async_database_url == "postgresql+asyncpg://app:pw@db:5432/dialler"
    assert settings.async_replica_url == "mysql+aiomysql://ro:pw@replica:3306/main"


def test_cli_reports_a_bad_setting_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from cli.main import main

    monkeypatch.setenv("REDIS_URL", "memcached://localhost")
    result = CliRunner().invoke(main, ["db", "current"])
    assert result.exit_code == 1
    assert "configuration error: REDIS_URL: must be a Redis URL" in result.output


def test_log_scrubbing_hides_passwords_and_tokens() -> None:
    line = scrub("connecting to postgresql://app:s3cret@db/x with Bearer abc.def.ghi")
    assert "s3cret" not in line
    assert "abc.def.ghi" not in line


def test_type_adapters_are_shared_across_workflow_runs() -> None:
    """The SDK makes a payload converter per workflow run; ours must not rebuild pydantic
    adapters for each (an SDK upgrade that renames the cache would silently undo it)."""
    from temporalio.converter import CompositePayloadConverter

    from adapters.temporal import DATA_CONVERTER
    from schemas.outreach import OutreachInput

    first = DATA_CONVERTER.payload_converter_class()
    second = DATA_CONVERTER.payload_converter_class()
    assert isinstance(first, CompositePayloadConverter)
    assert isinstance(second, CompositePayloadConverter)
    payload = first.to_payloads([OutreachInput(7)])
    assert first.from_payloads(payload, [OutreachInput]) == [OutreachInput(7)]
    assert second.from_payloads(payload, [OutreachInput]) == [OutreachInput(7)]
    json_converters = [
        c for c in (*first.converters.values(), *second.converters.values())
        if hasattr(c, "_type_adapter")
    ]  # fmt: skip
    assert len(json_converters) == 2
    assert json_converters[0]._type_adapter is json_converters[1]._type_adapter


# --- secrets outside development ------------------------------------------------------------

_STRONG = {
    "SECRET_KEY": "Qm9vdHN0cmFwLXNlY3JldC1rZXktZm9yLXRlc3Rz-7f3a",
    "JWT_SECRET": "p8Vd2kLx-Jw0tSeCr3t-4Ru7n1nGPr0dUct10n-9qZ",
    "MAGIC_LINK_SECRET": "mL-5ecret_for_handoff_tokens_Xy7Wq2Zr8Tn4",
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "fedcba9876543210" * 2,
    "TWILIO_API_KEY_SID": "SK" + "89abcdef01234567" * 2,
    "TWILIO_API_KEY_SECRET": "Zt7RkWq2Lm9Xp4Vb8Nc3Jd6Hf1Gs5Ya0",
    "TWILIO_TWIML_APP_SID": "AP" + "13579bdf02468ace" * 2,
    "SENDGRID_API_KEY": "SG.k3yIdentifier01.Xb9Qw7Er5Ty3Ui1Op8As6Df4Gh2Jk0Lz",
}


def _production(monkeypatch: pytest.MonkeyPatch, **changes: str | None) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name, value in (_STRONG | changes).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_production_starts_with_real_secrets_and_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _production(monkeypatch)
    settings = load_settings()
    assert settings.twilio_enabled and settings.sendgrid_enabled


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_may_use_the_published_defaults(
    monkeypatch: pytest.MonkeyPatch, environment: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    Path(".env").write_text((ROOT / "env.template").read_text())
    settings = load_settings()
    assert not settings.twilio_enabled and not settings.sendgrid_enabled


def test_production_refuses_the_env_template_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    Path(".env").write_text((ROOT / "env.template").read_text())
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith("configuration error: SECRET_KEY: is a published default")


_SECRETS = ["SECRET_KEY", "JWT_SECRET", "MAGIC_LINK_SECRET"]
_CREDENTIALS = ["TWILIO_AUTH_TOKEN", "TWILIO_API_KEY_SECRET", "SENDGRID_API_KEY"]
_SIDS = ["TWILIO_ACCOUNT_SID", "TWILIO_API_KEY_SID", "TWILIO_TWIML_APP_SID"]


def _template_value(name: str) -> str:
    found = re.search(rf"^{name}=(\S*)", (ROOT / "env.template").read_text(), re.MULTILINE)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        *[(name, None, "is required outside development") for name in _CREDENTIALS + _SIDS],
        *[(name, _template_value(name), "is a published default") for name in _SECRETS],
        *[(name, "x" * 8 + "-change-me-" + "y" * 24, "placeholder") for name in _SECRETS],
        *[(name, "Ab1-" * 6, "at least 32 characters") for name in _CREDENTIALS[:2]],
        *[(name, "abab" * 10, "too weak") for name in _SECRETS + _CREDENTIALS[:2]],
        ("SENDGRID_API_KEY", "Xx." + "k3yIdentifier01Xb9Qw7Er5Ty3Ui1Op8As6", "starts with SG."),
        *[(name, "AC" + "z" * 32, "must be a Twilio SID") for name in _SIDS],
    ],
)
def test_production_refuses_a_missing_default_or_weak_secret_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str | None, expected: str
) -> None:
    _production(monkeypatch, **{variable: value})
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"configuration error: {variable}: ")
    assert expected in message
    assert "\n" not in message
    if value:
        assert value not in message


def test_production_secrets_fall_back_to_no_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset secrets in production are the built-in defaults, which are refused too."""
    for name in _SECRETS:
        _production(monkeypatch, **{name: None})
        with pytest.raises(ConfigError, match=f"{name}: is a published default"):
            load_settings()
        monkeypatch.setenv(name, _STRONG[name])
