"""Typed settings: one object, read from the environment, `cwn.toml` and defaults.

Why one object: every service is assembled in `wiring.py` from this, so a test or a
worker can run with a different home or database without touching global state.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def _toml_values() -> dict[str, Any]:
    """Read `cwn.toml` from `CWN_CONFIG` or the working directory, flattening `[cwn]`."""
    import os

    path = Path(os.environ.get("CWN_CONFIG", "cwn.toml"))
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    section = data.get("cwn", data)
    return {k.replace("-", "_"): v for k, v in section.items() if not isinstance(v, dict)}


class _TomlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return _toml_values()


class Settings(BaseSettings):
    """All configuration of a cwn installation."""

    model_config = SettingsConfigDict(env_prefix="CWN_", extra="ignore")

    home: Path = Field(default=Path("./var"), description="Data directory (archives, outbox).")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite under home."
    )
    smtp_url: str | None = Field(default=None, description="smtp://host:port; else outbox.")
    ingest_batch_rows: int = Field(
        default=250_000, description="Rows parsed and stored per batch (bounds memory)."
    )
    default_tlp: str = Field(default="AMBER", description="TLP for events that carry none.")
    keep_raw: bool = Field(
        default=False,
        description="Store IntelMQ's per-event `raw` (base64 record) for CSV feeds. The whole "
        "file is always archived; per-event raw costs about a third of the parse.",
    )

    # -- the desk, as recipients see it (mail sender, case lookup, phone) ------------------
    desk_name: str = Field(default="CWN desk", description="Sender name of notifications.")
    desk_email: str = Field(default="meldingen@cwn.example", description="Sender address.")
    desk_url: str = Field(default="http://localhost:8080/case/{case_id}?key={key}",
                          description="The case page a mail links to ({case_id}; {key}: "
                          "the case's key, which opens the page without an account).")
    desk_phone: str = Field(default="", description="Phone number printed in mails.")
    desk_register_url: str = Field(default="https://cwn.example/register",
                                   description="Where an unsolicited recipient signs up.")
    # -- notification and delivery ----------------------------------------------------------
    mail_domain: str | None = Field(default=None, description="Message-ID and VERP domain; "
                                    "default: the domain of desk_email.")
    digest_hour: int = Field(default=6, ge=0, le=23, description="Daily digest hour (UTC).")
    soft_bounce_threshold: int = Field(default=3, ge=1,
                                       description="Soft bounces before an address is disabled.")
    delivery_workers: int = Field(default=2, ge=1, description="Parallel SMTP connections.")
    render_workers: int | None = Field(default=None, ge=1,
                                       description="Render processes; default min(4, CPUs).")
    retry_base_seconds: int = Field(default=300, ge=1, description="First retry delay.")
    retry_cap_seconds: int = Field(default=4 * 3600, ge=1, description="Longest retry delay.")
    retry_give_up_seconds: int = Field(default=3 * 86400, ge=1,
                                       description="Deferred mail older than this fails.")
    live_lookups: bool = Field(default=False, description="Ask RDAP and fetch security.txt "
                               "when resolving contacts of unregistered owners (cached).")
    rdap_ip_url: str = Field(default="https://rdap.db.ripe.net/ip/{}",
                             description="RDAP IP lookup URL ({} = address).")
    rdap_asn_url: str = Field(default="https://rdap.db.ripe.net/autnum/{}",
                              description="RDAP AS lookup URL ({} = number).")
    rdap_rate: float = Field(default=5.0, gt=0, description="RDAP requests per second per host.")
    securitytxt_url: str = Field(default="https://{domain}",
                                 description="Base URL of a domain's security.txt.")
    securitytxt_keyring: Path | None = Field(default=None, description="OpenPGP keyring to "
                                             "verify signed security.txt files.")
    dkim_key_file: Path | None = Field(default=None, description="PEM key: DKIM-sign mail.")
    dkim_selector: str | None = Field(default=None, description="DKIM selector.")
    dkim_domain: str | None = Field(default=None, description="DKIM signing domain (d=).")
    # -- portal and REST API (`cwn serve`) ----------------------------------------------------
    public_url: str = Field(default="http://localhost:8080",
                            description="Where the portal is reached; links in mails use it.")
    web_host: str = Field(default="127.0.0.1", description="`cwn serve` listen address.")
    web_port: int = Field(default=8080, ge=1, le=65535, description="`cwn serve` port.")
    web_workers: int = Field(default=1, ge=1, description="`cwn serve` worker processes.")
    web_forwarded_allow_ips: str = Field(
        default="127.0.0.1", description="Reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto headers are believed (comma-separated addresses or networks, "
        "or `*`): the login throttle counts per client address.")
    secret_key: str | None = Field(default=None, description="Seals TOTP seeds; default: a "
                                   "random key kept in `$CWN_HOME/secret.key` (mode 0600).")
    secure_cookies: bool = Field(default=True, description="Mark cookies Secure (HTTPS "
                                 "only; browsers also accept them on http://localhost).")
    session_hours: int = Field(default=12, ge=1, description="Idle portal sessions expire.")
    login_max_failures: int = Field(default=5, ge=1, description="Failed sign-ins per account "
                                    "in `login_window_minutes` before it is throttled.")
    login_max_failures_ip: int = Field(default=20, ge=1,
                                       description="The same, per client address.")
    login_window_minutes: int = Field(default=15, ge=1, description="Throttle window.")
    invitation_days: int = Field(default=7, ge=1, description="Invitation links expire.")
    password_reset_minutes: int = Field(default=60, ge=5, le=1440,
                                        description="Password reset links expire.")
    dns_nameserver: str | None = Field(default=None, description="host[:port] to ask for DNS "
                                       "TXT challenges; default: the system resolver.")
    contact_confirm_days: int = Field(default=90, ge=1, description="Contacts not confirmed "
                                      "for this long get a reminder.")
    api_max_upload_mb: int = Field(default=512, ge=1, description="Largest API submission.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls))

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'cwn.sqlite3').resolve()}"

    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    @property
    def raw_dir(self) -> Path:
        return self.archive_dir / "raw"

    @property
    def events_dir(self) -> Path:
        return self.archive_dir / "events"

    @property
    def outbox_dir(self) -> Path:
        return self.home / "outbox"

    @property
    def publicdata_dir(self) -> Path:
        """Imported public data (pyasn, RIR statistics, RIPE dumps, CSIRT directory)."""
        return self.home / "publicdata"

    @property
    def schema_dir(self) -> Path:
        """Operator-loaded Shadowserver report schemas extend the built-in table."""
        return self.home / "schemas"
