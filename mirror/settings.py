"""Airlock's configuration: `airlock.toml` (or `--config FILE`), overridden by `AIRLOCK_*` variables.

Every setting and its default is listed in the README's Configuration table; keep them in step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from mirror.store.location import CONFIG_FILE_VARIABLE, DATABASE_FILE, DEFAULT_CONFIG_FILE, DEFAULT_DATA_DIR


class Settings(BaseSettings):
    """What an operator configures. Paths are relative to the working directory."""

    model_config = SettingsConfigDict(env_prefix="AIRLOCK_", extra="forbid", frozen=True)

    listen: str = Field("127.0.0.1:8000", description="HOST:PORT of the one public port")
    data_dir: Path = Field(
        Path(DEFAULT_DATA_DIR), description="state: database, devpi server dir, conda channels, logs"
    )
    allowlists: Path = Field(Path("allowlists"), description="folder of allowlist files")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the data dir")
    database_password_file: Path | None = Field(
        None, description="file holding the database password (a Docker/compose secret), kept out of the URL"
    )
    pypi_upstream: str = Field("https://pypi.org/simple/", description="PEP 503/691 index devpi mirrors")
    pypi_page_ttl: float = Field(
        2.0, ge=0, le=300, description="seconds Airlock reuses devpi's answer for a project page"
    )
    pypi_metadata: str = Field(
        "extract",
        pattern="^(upstream|extract)$",
        description="PEP 658 metadata: `upstream` serves it where the upstream does; `extract` also reads it from the wheels of an upstream without it",
    )
    devpi_cache_expiry: int = Field(1800, ge=0, description="seconds devpi reuses upstream's project pages")
    upstream_timeout: float = Field(30.0, gt=0, description="seconds to wait for devpi or an upstream")
    require_token: bool = Field(False, description="package routes and /metrics need a token")
    self_service_environments: str = Field(
        "preprod",
        description="comma-separated environments whose requests are auto-approved when every pre-check passes",
    )
    max_exception_days: int = Field(180, ge=1, le=3650, description="longest duration an exception may ask for")
    token_max_days: int = Field(365, ge=1, le=3650, description="longest lifetime a token may be created with")
    denial_summary_seconds: float = Field(
        60.0, ge=1, le=3600, description="window over which refusals without a valid token are summarised per source"
    )
    advisories: Path | None = Field(
        None, description="folder of OSV advisories for the vulnerability pre-check (the gate's source)"
    )
    max_body_bytes: int = Field(65536, ge=1024, description="largest API request body accepted")
    max_gate_decision_bytes: int = Field(
        64 * 2**20, ge=65536, description="largest gate decision accepted (it carries every finding of an image)"
    )
    webhook_urls: str = Field("", description="comma-separated URLs notified of exception events")
    webhook_secret: SecretStr | None = Field(None, description="HMAC-SHA256 key for X-Airlock-Signature")
    public_url: str | None = Field(None, description="URL clients use to reach Airlock (default http://LISTEN)")
    registry_retry_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="first wait before retrying a registry cache that could not start (then doubling, up to 5 min)",
    )
    registry_storage: Path | None = Field(
        None,
        description="YAML file holding the registry caches' `storage:` section (docker-registry's own "
        "drivers: s3, azure, gcs, or filesystem on a volume every replica mounts); default: the data dir",
    )
    log_format: str = Field(
        "auto",
        pattern="^(auto|json|text)$",
        description="service log lines: `auto` (readable lines on a terminal, JSON otherwise), `json` or `text`",
    )
    log_level: str = Field(
        "info",
        pattern="^(debug|info|warning|error)$",
        description="least severe log line shown; `debug` also shows third-party INFO lines",
    )

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("write HOST:PORT, e.g. 127.0.0.1:8000")
        return value

    @field_validator("database_password_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not (value.is_file() and os.access(value, os.R_OK)):
            raise ValueError(f"{value} is not a readable file (mount the secret there, or unset the setting)")
        return value

    @field_validator("registry_storage")
    @classmethod
    def _registry_storage(cls, value: Path | None) -> Path | None:
        if value is not None:
            from mirror.children.registry import read_registry_storage

            read_registry_storage(value)  # a bad file stops `airlock up` here, naming what to fix
        return value

    @field_validator("pypi_upstream")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL of a simple index, e.g. https://pypi.org/simple/")
        return value.rstrip("/") + "/"

    @property
    def webhook_url_list(self) -> list[str]:
        return [url.strip() for url in self.webhook_urls.split(",") if url.strip()]

    @property
    def self_service(self) -> frozenset[str]:
        return frozenset(env.strip() for env in self.self_service_environments.split(",") if env.strip())

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.listen}").rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        url = self.database_url or f"sqlite:///{(self.data_dir / DATABASE_FILE).resolve()}"
        if self.database_password_file is None:
            return url
        from sqlalchemy.engine import make_url

        password = self.database_password_file.read_text().strip()
        return make_url(url).set(password=password).render_as_string(hide_password=False)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get(CONFIG_FILE_VARIABLE, DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


class ConfigurationError(Exception):
    """Settings that cannot be used, explained per field."""


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Settings from the config file and environment; a readable error instead of a trace."""
    if config_file is not None:
        if not Path(config_file).is_file():
            raise ConfigurationError(f"{config_file}: no such configuration file")
        os.environ[CONFIG_FILE_VARIABLE] = config_file
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "configuration"
            problems.append(f"AIRLOCK_{field.upper()} ({field} in airlock.toml): {error['msg']}")
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(problems)) from None
