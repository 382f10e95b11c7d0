"""Typed settings, read once from the environment (prefix ``STUDIO_``) when first asked for."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STUDIO_", extra="ignore")

    home: Path = Field(
        default=Path(".studio"),
        description="Where the media store and the default SQLite database live.",
    )
    database_url: str | None = Field(
        default=None,
        description="Any SQLAlchemy URL (postgresql+psycopg://...). Default: SQLite under home.",
    )
    specs_dir: Path | None = Field(default=None, description="Extra channel specs (YAML files).")
    styles_dir: Path | None = Field(default=None, description="Extra style packs (YAML files).")
    models_dir: Path | None = Field(default=None, description="Extra model registry entries (YAML files).")
    voices_dir: Path | None = Field(default=None, description="Extra voice registry entries (YAML files).")
    music_dir: Path | None = Field(
        default=None, description="Music library folder (tracks with rights sidecars) for briefs "
        "with music.source: library.")
    effects_dir: Path | None = Field(
        default=None, description="Effects library folder; default: Studio's procedural effects.")
    ray_num_cpus: int | None = Field(
        default=None, description="CPUs for a local Ray started by Studio (default: all)."
    )
    ray_dashboard: bool = Field(default=False, description="Start the dashboard with local Ray.")
    model_device: str | None = Field(
        default=None, description="Device for model backends (cuda, cpu); default: cuda when present."
    )
    keep_actors_warm: bool = Field(
        default=True, description="On a Ray cluster, keep model actors alive between jobs."
    )
    x264_preset: str = Field(default="veryfast", description="libx264 preset for deliverables.")
    clip_crf: int = Field(default=12, description="CRF of the near-lossless shot masters.")
    clip_preset: str = Field(
        default="ultrafast",
        description="libx264 preset of shot masters: intermediates, so encode and decode speed "
        "matter more than their size",
    )

    @property
    def store_root(self) -> Path:
        return self.home / "store"

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'studio.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
