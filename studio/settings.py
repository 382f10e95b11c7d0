"""Typed settings, read once from the environment (prefix ``STUDIO_``) when first asked for."""

from __future__ import annotations

import os
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
    policy: Path | None = Field(
        default=None, description="The organisation's policy file (Policy.1 YAML: allowed models and "
        "voices per usage class, channel and region, disclosure and likeness rules; studio.policy); "
        "default: the one Studio ships (studio/data/policy/default.yaml).")
    effects_dir: Path | None = Field(
        default=None, description="Effects library folder; default: Studio's procedural effects.")
    assets_roots: str = Field(
        default="", description="Folders besides the brief's own that a brief may name files and "
        "folders in (reference images, music and effects libraries); os.pathsep-separated.")
    max_image_pixels: int = Field(
        default=40_000_000, ge=1, description="Largest reference image a brief may name, in pixels "
        "(checked from the header, before decoding).")
    max_image_bytes: int = Field(
        default=50_000_000, ge=1, description="Largest reference image file a brief may name, in bytes.")
    api_max_body_bytes: int = Field(
        default=1_000_000, ge=1, description="Largest request body `studio serve` reads (a brief is a "
        "few kB); larger ones are refused with 413 before they are read whole.")
    worker_lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a `studio serve` worker's claim on a job lasts "
        "without a heartbeat (it beats every third of it). A job whose server died is taken up "
        "again once its lease has lapsed, so this bounds how long a crash leaves it waiting.")
    worker_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often an idle `studio serve` worker looks for queued "
        "jobs and lapsed leases.")
    ray_num_cpus: int | None = Field(
        default=None, description="CPUs for a local Ray started by Studio (default: all)."
    )
    ray_dashboard: bool = Field(default=False, description="Start the dashboard with local Ray.")
    ray_logs: bool = Field(
        default=False, description="Show Ray's own messages (start-up banners, worker logs) on "
        "stderr; off, the user sees only Studio's lines.")
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
    # Disclosure (studio.provenance): C2PA manifests are signed with the organisation's
    # certificate. Paths only: the key stays wherever the operator keeps it, never in the repo.
    signing_cert: Path | None = Field(
        default=None, description="PEM: the organisation's C2PA signing certificate (EC P-256 leaf "
        "issued by a CA, digitalSignature + emailProtection/documentSigning usages), then its "
        "intermediates.")
    signing_key: Path | None = Field(
        default=None, description="PEM: the signing certificate's private key (unencrypted; keep it "
        "readable by Studio only).")
    trust_anchors: Path | None = Field(
        default=None, description="PEM: root CA certificates `studio verify` trusts (default: none; "
        "a valid signature is then reported untrusted).")

    @property
    def store_root(self) -> Path:
        return self.home / "store"

    @property
    def uploads_dir(self) -> Path:
        """Where ``POST /v1/uploads`` keeps images: ``uploads/PROJECT/<sha256><ext>``. Each
        project's folder is an asset root for that project's briefs (studio.assets)."""
        return self.home / "uploads"

    @property
    def asset_roots(self) -> list[Path]:
        return [Path(p).expanduser() for p in self.assets_roots.split(os.pathsep) if p.strip()]

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'studio.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
