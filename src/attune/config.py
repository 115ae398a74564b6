"""Runtime settings, read from ``ATTUNE_*`` environment variables (pydantic-settings).

Nothing here is built at import time: call :func:`get_settings` (or construct
:class:`Settings`) where a process starts, and pass the object down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Settings(BaseSettings):
    """Everything a process of Attune needs to know about its deployment."""

    model_config = SettingsConfigDict(env_prefix="ATTUNE_", env_file=None, extra="ignore")

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
    model_refresh_seconds: float = Field(
        default=2.0, ge=0, description="How often a server checks for a newer model version."
    )
    cors_origins: list[str] = Field(default_factory=list)
    redis_url: str | None = Field(
        default=None,
        description="redis://… : cache and live session state shared by every replica "
        "(default: in-process).",
    )
    redis_prefix: str = Field(default="attune", description="Namespace of Attune's Redis keys.")

    @field_validator("data_dir", "artifact_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def sql_url(self) -> str:
        """The database URL in SQLAlchemy form, with the psycopg 3 driver for PostgreSQL."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'attune.db').resolve()}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url

    @property
    def models_dir(self) -> Path:
        return self.artifact_dir or (self.data_dir / "models")

    def event_weight(self, event_type: str) -> float:
        return self.event_type_weights.get(event_type, 1.0)


def get_settings() -> Settings:
    """Read settings from the environment now (not cached: tests change the environment)."""
    return Settings()
