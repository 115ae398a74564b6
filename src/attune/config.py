"""Runtime settings, read from ``ATTUNE_*`` environment variables (pydantic-settings).

Nothing here is built at import time: call :func:`get_settings` (or construct
:class:`Settings`) where a process starts, and pass the object down.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from attune.errors import ConfigurationError

DEFAULT_EVENT_TYPES: dict[str, float] = {
    "view": 1.0,
    "click": 1.0,
    "like": 2.0,
    "rating": 1.0,
    "add_to_cart": 3.0,
    "purchase": 5.0,
    "share": 2.0,
    "email_open": 0.3,
    "email_click": 1.0,
    "search": 0.0,
    "impression": 0.0,
    "dislike": 0.0,
    "not_interested": 0.0,
}
"""Known event types and their default weight in the interaction matrix.

A weight of zero means the event is stored (it is still history) but does not count
as positive feedback when training.
"""

DEFAULT_WORKSPACE = "default"
WORKSPACES_FOLDER = "workspaces"
"""The folder (in the default workspace's data and artifact folders) holding the others'."""
WORKSPACE_PATTERN = re.compile(r"^[a-z0-9_-]{1,32}$")


def check_workspace(name: str) -> str:
    """Return ``name`` if it is a valid workspace name (``[a-z0-9_-]{1,32}``), else raise."""
    if not isinstance(name, str) or not WORKSPACE_PATTERN.fullmatch(name):
        raise ValueError(f"workspace names are 1-32 of a-z, 0-9, '_' and '-'; got {name!r}")
    return name


class Settings(BaseSettings):
    """Everything a process of Attune needs to know about its deployment."""

    # hide_input_in_errors: a rejected setting (a short admin key, a database URL with its
    # password) must not be echoed into logs by the error message
    model_config = SettingsConfigDict(
        env_prefix="ATTUNE_",
        env_file=None,
        extra="ignore",
        hide_input_in_errors=True,
        env_parse_none_str="null",  # ATTUNE_RECOMMENDATION_LOG_DAYS=null: keep them all
    )

    data_dir: Path = Field(
        default=Path("attune-data"),
        description="Where the embedded SQLite database and model artifacts live.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql://... or sqlite:///...). "
        "Default: SQLite at <data_dir>/attune.db.",
    )
    artifact_dir: Path | None = Field(
        default=None, description="Model artifact root. Default: <data_dir>/models."
    )
    event_type_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_TYPES),
        description="Weight of each event type when building the interaction matrix.",
    )
    allow_unknown_event_types: bool = Field(
        default=False, description="Accept event types that are not in event_type_weights."
    )
    event_value_modes: dict[str, str] = Field(
        default_factory=lambda: {"purchase": "log1p", "add_to_cart": "log1p"},
        description="Per event type, how value scales the weight: ignore, linear or log1p.",
    )
    history_half_life_days: float | None = Field(
        default=None,
        gt=0,
        description="At serving time, a history event's weight halves every this many days "
        "before the user's newest event (None: all history counts alike).",
    )
    max_batch_events: int = Field(default=10_000, ge=1)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    default_algorithm: str = Field(
        default="auto",
        description="What `attune train` fits without --algorithm: 'auto' chooses among the "
        "candidates by validation (or reuses the last tuned choice); or a model name.",
    )
    popularity_half_life_days: float = Field(default=30.0, gt=0)
    segment_keys: list[str] = Field(
        default_factory=list,
        description="Segments the popularity fallback also learns, e.g. "
        '["traits.region", "context.device"]: a user trait or an event context field each '
        "(at most 4). Empty: one global list.",
    )
    min_segment_people: int = Field(
        default=20, ge=1, description="Fewest people a segment needs to get its own list."
    )
    model_refresh_seconds: float = Field(
        default=2.0, ge=0, description="How often a server checks for a newer model version."
    )
    cors_origins: list[str] = Field(default_factory=list)
    redis_url: str | None = Field(
        default=None,
        description="redis://… : cache and live session state shared by every replica "
        "(default: in-process).",
    )
    recommendation_cache_seconds: float = Field(
        default=30.0,
        ge=0,
        description="How long a person's list is reused (0: never); their own events, "
        "preference changes and new model versions drop it at once.",
    )
    redis_prefix: str = Field(default="attune", description="Namespace of Attune's Redis keys.")

    # --- privacy (attune.privacy) --------------------------------------------------------
    consent_required: bool = Field(
        default=False,
        description="True (GDPR-strict): a person without a consent record is neither tracked "
        "nor personalised. False: people without a record count as consenting.",
    )
    untracked_events: Literal["drop", "anonymize"] = Field(
        default="drop",
        description="Events of people without tracking consent: drop them, or store them "
        "without user, anonymous and recommendation ids (item popularity still counts).",
    )
    pseudonymize_user_ids: bool = Field(
        default=False,
        description="Store a keyed HMAC of every user and anonymous id instead of the id; "
        "callers keep using their own ids. Needs pseudonym_key.",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="The HMAC key of pseudonymize_user_ids. Changing it orphans stored data.",
    )
    scrub_personal_data: Literal["redact", "off"] = Field(
        default="redact",
        description="Replace emails, phone numbers and card numbers in event properties, "
        "event context and user traits by [email], [phone], [card] before storing them.",
    )
    retention_days: dict[str, float] = Field(
        default_factory=dict,
        description='Days an event is kept, per event type, "*" for every other type '
        '(e.g. {"view": 90, "*": 365}). Empty: keep everything.',
    )
    recommendation_log_days: float | None = Field(
        default=90.0,
        gt=0,
        description="Days the log of an answered list (what was shown to whom, for "
        "attribution and export) is kept; null keeps every row. Every answer adds a row, "
        "so at high traffic this is the table that grows fastest.",
    )
    retention_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="How often the worker applies retention_days and recommendation_log_days.",
    )
    retrain_interval_seconds: float = Field(
        default=0.0,
        ge=0,
        description="How often the worker retrains the serving configuration on every "
        "stored event (e.g. 86400: daily); 0: never (run `attune train` yourself).",
    )
    retrain_min_new_events: int = Field(
        default=1,
        ge=1,
        description="A scheduled retrain is skipped until at least this many events "
        "arrived since the serving version was made.",
    )
    retune_interval_seconds: float = Field(
        default=0.0,
        ge=0,
        description="A scheduled retrain also re-tunes (as `attune train --tune`) when the "
        "last tuning is older than this (e.g. 604800: weekly); 0: never re-tune.",
    )
    retune_budget_seconds: float = Field(
        default=600.0, gt=0, le=86_400, description="The time budget of a scheduled re-tune."
    )
    retrain_gate: bool = Field(
        default=True,
        description="A scheduled retrain serves its new version only if, judged on the newest "
        "events against the serving version, it is not clearly worse (champion/challenger "
        "check); otherwise it is kept as a candidate and the serving version stays.",
    )
    keep_model_versions: int = Field(
        default=0,
        ge=0,
        description="After a scheduled retrain, delete the files of all but this many newest "
        "versions (as `attune versions prune --keep N`; at least 2); 0: keep every version.",
    )
    embedded_worker: bool = Field(
        default=True,
        description="Run the scheduled jobs (retention, retraining) in a background thread of "
        "`attune serve`; turn off when a separate `attune worker` runs them.",
    )

    @field_validator("keep_model_versions", mode="after")
    @classmethod
    def _keep_at_least_two(cls, value: int) -> int:
        if value == 1:
            raise ValueError("keep_model_versions must be 0 (keep all) or at least 2")
        return value

    @field_validator("retention_days", mode="after")
    @classmethod
    def _positive_days(cls, value: dict[str, float]) -> dict[str, float]:
        for event_type, days in value.items():
            if not days > 0:
                raise ValueError(f"retention_days[{event_type!r}] must be > 0 days, got {days}")
        return value

    @model_validator(mode="after")
    def _pseudonym_key_when_needed(self) -> Settings:
        if self.pseudonymize_user_ids and self.pseudonym_key is None:
            raise ConfigurationError(
                "ATTUNE_PSEUDONYMIZE_USER_IDS is on but ATTUNE_PSEUDONYM_KEY is not set: "
                "set a secret of at least 16 characters (and keep it: changing it orphans "
                "stored data)"
            )
        return self

    @field_validator("segment_keys", mode="after")
    @classmethod
    def _segment_keys(cls, value: list[str]) -> list[str]:
        from attune.features.segments import check_segment_keys

        return check_segment_keys(value)

    @field_validator("data_dir", "artifact_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    # --- auth and workspaces (attune.auth) ---------------------------------------------
    workspace: str = Field(
        default=DEFAULT_WORKSPACE,
        description="The workspace (tenant) a command acts on; each has its own data and models.",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="A full-scope secret API key of the default workspace (for automated "
        "deployments: the first key, with no table row). Never logged.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Master secret behind public keys' user-token signing secrets and audit "
        "hashes. Default: generated once into <data_dir>/secret. Set it when several "
        "servers share one database.",
    )
    rate_limit_per_second: float = Field(
        default=10_000, gt=0, description="Requests per second per secret key (token bucket)."
    )
    rate_limit_burst: int = Field(default=20_000, ge=1, description="Bucket size, secret keys.")
    public_rate_limit_per_second: float = Field(
        default=20, gt=0, description="Requests per second per public key (token bucket)."
    )
    public_rate_limit_burst: int = Field(default=60, ge=1, description="Bucket size, public keys.")
    key_cache_seconds: float = Field(
        default=10,
        ge=0,
        description="How long a verified key is trusted without reading the key table again "
        "(a revocation made by another process takes effect within this time).",
    )

    @field_validator("workspace", mode="after")
    @classmethod
    def _workspace(cls, value: str) -> str:
        return check_workspace(value)

    def for_workspace(self, name: str) -> Settings:
        """These settings, acting on workspace ``name`` (its own database and models)."""
        return self.model_copy(update={"workspace": check_workspace(name)})

    @property
    def is_default_workspace(self) -> bool:
        return self.workspace == DEFAULT_WORKSPACE

    @property
    def workspace_dir(self) -> Path:
        """Where this workspace's embedded files live: the data dir itself for the default."""
        if self.is_default_workspace:
            return self.data_dir
        return self.data_dir / WORKSPACES_FOLDER / self.workspace

    @property
    def sql_url(self) -> str:
        """The database URL in SQLAlchemy form, with the psycopg 3 driver for PostgreSQL.

        A workspace other than the default has its own SQLite file (under
        ``workspaces/<name>/`` beside the default one) or, on PostgreSQL, the same database
        and a schema of its own (:attr:`sql_schema`).
        """
        url = self.database_url or f"sqlite:///{(self.workspace_dir / 'attune.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        if self.database_url and url.startswith("sqlite") and not self.is_default_workspace:
            head, _, path = url.partition("///")
            if path and path != ":memory:":
                file = Path(path)
                url = f"{head}///{file.parent / WORKSPACES_FOLDER / self.workspace / file.name}"
        return url

    @property
    def sql_schema(self) -> str | None:
        """The PostgreSQL schema of a workspace other than the default (``ws_<name>``)."""
        if self.is_default_workspace or not self.sql_url.startswith("postgresql"):
            return None
        return f"ws_{self.workspace}"

    @property
    def models_dir(self) -> Path:
        if self.artifact_dir is None:
            return self.workspace_dir / "models"
        if self.is_default_workspace:
            return self.artifact_dir
        return self.artifact_dir / WORKSPACES_FOLDER / self.workspace

    def event_weight(self, event_type: str) -> float:
        return self.event_type_weights.get(event_type, 1.0)


def get_settings() -> Settings:
    """Read settings from the environment now (not cached: tests change the environment)."""
    return Settings()
