"""The model registry: which generative models Studio may run, as versioned data.

Each model is one ``ModelEntry`` document (``"schema": "ModelEntry.1"``), shipped in
``studio/data/models/*.yaml`` and extendable from the user's own folder
(``STUDIO_MODELS_DIR``); a user entry with the same ``id`` as a shipped one replaces it
(that is how production pins revisions and weight hashes of the shipped templates).

An entry says where the weights are (a local folder, or a hub id *and* revision), how to
run them (dtype, scheduler, steps, guidance, size, batch size, img2img strength,
IP-Adapter, fps/frames for video, max_duration/sample_rate for text-to-music), what they
need (GPU memory, GPU count) and under which terms they may be used: the licence, the
provenance as the vendor states it, and the usage classes (``experiment`` /
``internal`` / ``public``) the licence and studio policy allow. ``check_usage`` refuses
a run *before* anything is generated.

Weights hash (``weights_sha256``), defined precisely so anyone can recompute it:

1. Take every regular file (symlinks followed, so a hub cache snapshot works) under the
   model folder whose name ends in ``.safetensors``, ``.bin``, ``.pt``, ``.pth``,
   ``.ckpt`` or ``.gguf``, skipping any path with a component that starts with ``.``
   (e.g. ``.cache/``, ``.git/``).
2. For each, the line ``<relative POSIX path>:<sha256 hex of the file's bytes>``.
3. Sort the lines by relative path (Python string order), join each with a trailing
   ``\\n``, and take the sha256 hex of the UTF-8 bytes.

Configs and tokenizer files are not hashed: they are small, human-readable and recorded
with the run; the hash pins the learned parameters. In a hub cache the snapshot folder of
a revision holds every variant ever downloaded for it (e.g. both fp16 and fp32 files), so
pin hashes of folders you materialise (``hf download --local-dir``), not of a shared cache.

This module imports neither torch nor diffusers: listing models must stay cheap.
"""

from __future__ import annotations

import hashlib
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from studio import documents
from studio.errors import StudioError
from studio.rights import RightsTerms

USAGE_CLASSES = ("experiment", "internal", "public")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")
ENV_DIR = "STUDIO_MODELS_DIR"

ID_RE = r"^[a-z0-9][a-z0-9._-]*$"
SHA256_RE = r"^[0-9a-f]{64}$"
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")

Kind = Literal["text-to-image", "image-to-image", "image-to-video", "text-to-music"]
UsageClass = Literal["experiment", "internal", "public"]

# Which backend runs which kind: images and videos are different call shapes.
BACKEND_FOR_KIND: dict[str, str] = {
    "text-to-image": "diffusers-image",
    "image-to-image": "diffusers-image",
    "image-to-video": "diffusers-video",
    # transformers MusicGen-class models on a Ray actor (audio.musicgen)
    "text-to-music": "musicgen",
}


class Source(BaseModel):
    """Where the weights are: a local diffusers folder, or a hub repository at a revision.

    A hub revision should be a 40-hex commit: a branch such as ``main`` moves, so the
    same entry could load different weights tomorrow (``ModelEntry.pinned`` says which)."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = Field(None, description="a local diffusers-format folder")
    hub_id: str | None = Field(None, pattern=r"^[\w.-]+/[\w.-]+$", description="owner/name")
    revision: str | None = Field(None, description="commit (preferred), tag or branch")
    variant: str | None = Field(None, description='weight file variant, e.g. "fp16"')

    @model_validator(mode="after")
    def _one(self) -> Source:
        if (self.path is None) == (self.hub_id is None):
            raise ValueError("give exactly one of path or hub_id")
        if self.hub_id is not None and not self.revision:
            raise ValueError("a hub source needs a revision (a commit hash pins it)")
        if self.path is not None and self.revision is not None:
            raise ValueError("revision applies to hub_id sources only")
        return self


class IPAdapter(BaseModel):
    """An IP-Adapter (image prompt) for reference conditioning; see diffusers'
    ``load_ip_adapter``. ``image_encoder_folder`` is relative to ``subfolder`` unless
    absolute, as diffusers reads it."""

    model_config = ConfigDict(extra="forbid")
    path: str | None = None
    hub_id: str | None = Field(None, pattern=r"^[\w.-]+/[\w.-]+$")
    revision: str | None = None
    subfolder: str = ""
    weight_name: str
    image_encoder_folder: str | None = "image_encoder"
    scale: float = Field(0.6, ge=0, le=2)
    licence: str = ""

    @model_validator(mode="after")
    def _one(self) -> IPAdapter:
        if (self.path is None) == (self.hub_id is None):
            raise ValueError("give exactly one of path or hub_id")
        if self.hub_id is not None and not self.revision:
            raise ValueError("a hub source needs a revision (a commit hash pins it)")
        return self


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field("ModelEntry.1", alias="schema")
    id: str = Field(pattern=ID_RE)
    title: str = ""
    kind: Kind
    backend: Literal["diffusers-image", "diffusers-video", "musicgen"]
    source: Source
    pipeline_class: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="a diffusers pipeline class name; default: DiffusionPipeline picks from model_index.json",
    )
    weights_sha256: str | None = Field(None, pattern=SHA256_RE, description="see studio.models")
    licence: str = Field(min_length=1)
    licence_url: str | None = None
    provenance: str = Field(min_length=1, description="training data and origin, as the vendor states them")
    usage_classes: list[UsageClass] = Field(min_length=1)
    # The rights ledger's terms beyond licence, provenance and usage classes (licence id,
    # licensor, territories, media, channels, term): studio.rights.model_record.
    rights: RightsTerms | None = None
    notes: str = ""
    # what it needs
    gpu_memory_gb: float | None = Field(None, gt=0, description="approximate, at the default size")
    num_gpus: int = Field(1, ge=0)
    # how to run it
    dtype: Literal["float32", "float16", "bfloat16"] = "float16"
    scheduler: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                  description="a diffusers scheduler class name")
    steps: int = Field(30, ge=1, le=1000)
    guidance: float = Field(7.0, ge=0, le=50)
    width: int = Field(1024, gt=0, le=8192)
    height: int = Field(1024, gt=0, le=8192)
    batch_size: int = Field(1, ge=1, le=64)
    strength: float | None = Field(None, gt=0, le=1, description="img2img: how much to repaint")
    ip_adapter: IPAdapter | None = None
    # extra keyword arguments for the pipeline call, passed only if its signature has them
    # (e.g. max_sequence_length for FLUX, motion_bucket_id for SVD)
    call_args: dict[str, str | int | float | bool] = {}
    # video
    fps: int | None = Field(None, gt=0, le=240, description="the rate the model was trained at")
    num_frames: int | None = Field(None, ge=1, le=1024, description="frames per model call")
    extend: Literal["chain", "hold"] = Field(
        "chain",
        description="when a clip needs more frames than one call makes: chain = generate the "
        "next chunk from the last frame; hold = repeat the last frame",
    )
    # music: one call makes at most max_duration seconds (MusicGen was trained on 30 s
    # clips and its decoder has a fixed number of positions); a longer bed is refused
    # rather than looped silently.
    max_duration: float | None = Field(None, gt=0, le=600,
                                       description="text-to-music: longest bed per call (s)")
    sample_rate: int | None = Field(None, gt=0, le=192000,
                                    description="text-to-music: the rate the model writes (checked at load)")

    @model_validator(mode="after")
    def _check(self) -> ModelEntry:
        want = BACKEND_FOR_KIND[self.kind]
        if self.backend != want:
            raise ValueError(f"kind {self.kind} runs on backend {want!r}, not {self.backend!r}")
        if len(set(self.usage_classes)) != len(self.usage_classes):
            raise ValueError("usage_classes lists a class twice")
        if self.kind == "image-to-image" and self.strength is None:
            raise ValueError("an image-to-image model needs strength (0 < strength <= 1)")
        if self.kind == "image-to-video":
            if self.fps is None or self.num_frames is None:
                raise ValueError("an image-to-video model needs fps and num_frames")
        elif self.fps is not None or self.num_frames is not None:
            raise ValueError("fps and num_frames apply to image-to-video models only")
        if self.kind == "text-to-music":
            if self.max_duration is None:
                raise ValueError("a text-to-music model needs max_duration (seconds per call)")
        elif self.max_duration is not None or self.sample_rate is not None:
            raise ValueError("max_duration and sample_rate apply to text-to-music models only")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # rights came later: left out while unset, so the documents a backend receives (and
        # any record of them) of an entry without it stay as they were.
        out = handler(self)
        if isinstance(out, dict) and out.get("rights", 0) is None:
            out.pop("rights")
        return out

    @property
    def pinned(self) -> bool:
        """True when the exact weights are fixed: a hash, and for hub sources a commit."""
        if self.weights_sha256 is None:
            return False
        return self.source.hub_id is None or bool(COMMIT_RE.match(self.source.revision or ""))

    def dump(self) -> dict[str, Any]:
        """The document as data (what a backend's constructor takes)."""
        return self.model_dump(mode="json", by_alias=True)


# ------------------------------------------------------------------------ weights hash

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    # Model files are gigabytes and an actor asks again on every describe(): hash each
    # (path, size, mtime) once per process.
    if key in _HASH_CACHE:
        return _HASH_CACHE[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key]


def weight_files(folder: str | os.PathLike[str]) -> list[Path]:
    """The files the weights hash covers, sorted by relative path (see module docstring)."""
    root = Path(folder)
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or not name.endswith(WEIGHT_SUFFIXES):
                continue
            p = Path(dirpath) / name
            if p.is_file():
                found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def weights_hash(folder: str | os.PathLike[str]) -> str:
    """sha256 of the sorted ``relative_path:sha256`` lines of the weight files in ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise StudioError("model folder not found", fix="check source.path in the model entry",
                          source=str(root))
    files = weight_files(root)
    if not files:
        raise StudioError(
            "no weight files (" + ", ".join("*" + s for s in WEIGHT_SUFFIXES) + ") in the model folder",
            fix="point source.path at a diffusers-format folder (save_pretrained / hf download)",
            source=str(root),
        )
    lines = "".join(f"{p.relative_to(root).as_posix()}:{_file_sha256(p)}\n" for p in files)
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def verify_weights(entry: ModelEntry, folder: str | os.PathLike[str]) -> str:
    """Check ``folder`` against the entry's pinned hash; returns the actual hash. An entry
    without a pinned hash passes (its hash is still computed and recorded)."""
    actual = weights_hash(folder)
    if entry.weights_sha256 is not None and actual != entry.weights_sha256:
        raise StudioError(
            f"weights of model {entry.id!r} do not match: the entry pins weights_sha256 "
            f"{entry.weights_sha256} but the files in {folder} hash to {actual}",
            fix="restore the pinned weights, or (if the new weights are approved) set "
            "weights_sha256 in the model entry to the new hash",
            field="weights_sha256",
            source=str(folder),
        )
    return actual


# ---------------------------------------------------------------------------- registry


def _model_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


class ModelRegistry:
    """All model entries known to this process: shipped ones, then ``models_dir``."""

    def __init__(self, models_dir: Path | None = None) -> None:
        self.entries: dict[str, ModelEntry] = {}
        self.paths: dict[str, Path] = {}
        pkg = resources.files("studio") / "data" / "models"
        if not pkg.is_dir():
            raise StudioError(
                "the shipped model entries (studio/data/models) are missing from this install",
                fix="reinstall Studio; packagers: include data/models/*.yaml in package-data",
                source=str(pkg),
            )
        for entry in sorted(pkg.iterdir(), key=lambda p: p.name):
            if entry.name.endswith((".yaml", ".yml", ".json")):
                self._add(Path(str(entry)))
        if models_dir is not None:
            folder = Path(models_dir)
            if not folder.is_dir():
                raise StudioError("is not a folder", fix=f"create it or unset {ENV_DIR}",
                                  source=str(folder))
            for p in _model_files(folder):
                self._add(p)

    @classmethod
    def from_env(cls) -> ModelRegistry:
        """Shipped entries plus ``$STUDIO_MODELS_DIR`` when set."""
        folder = os.environ.get(ENV_DIR)
        return cls(Path(folder) if folder else None)

    def _add(self, path: Path) -> None:
        entry = documents.load(path, ModelEntry, "ModelEntry")

        def local(p: str) -> str:
            # A relative path in an entry means relative to the entry's file, so a folder
            # of entries and weights can move as a whole.
            q = Path(p).expanduser()
            return str(q if q.is_absolute() else (path.parent / q).resolve())

        if entry.source.path is not None:
            src = entry.source.model_copy(update={"path": local(entry.source.path)})
            entry = entry.model_copy(update={"source": src})
        if entry.ip_adapter is not None and entry.ip_adapter.path is not None:
            ipa = entry.ip_adapter.model_copy(update={"path": local(entry.ip_adapter.path)})
            entry = entry.model_copy(update={"ip_adapter": ipa})
        self.entries[entry.id] = entry
        self.paths[entry.id] = path

    def ids(self) -> list[str]:
        return sorted(self.entries)

    def get(self, model_id: str, field: str = "model") -> ModelEntry:
        try:
            return self.entries[model_id]
        except KeyError:
            raise StudioError(
                f"unknown model {model_id!r}",
                fix="use one of: " + ", ".join(self.ids()) + f" (or add a ModelEntry file to {ENV_DIR})",
                field=field,
            ) from None

    def allowed_for(self, usage_class: str) -> list[str]:
        return [i for i in self.ids() if usage_class in self.entries[i].usage_classes]

    def check_usage(self, entry: ModelEntry, usage_class: str, field: str = "usage_class") -> None:
        """Refuse, before any generation, a model whose licence/policy does not allow
        ``usage_class``."""
        if usage_class not in USAGE_CLASSES:
            raise StudioError(
                f"unknown usage class {usage_class!r}",
                fix="use one of: " + ", ".join(USAGE_CLASSES),
                field=field,
            )
        if usage_class in entry.usage_classes:
            return
        allowed = " and ".join(c for c in USAGE_CLASSES if c in entry.usage_classes)
        others = [i for i in self.allowed_for(usage_class) if self.entries[i].kind == entry.kind]
        hint = f" (e.g. {', '.join(others)})" if others else ""
        raise StudioError(
            f"model {entry.id!r} is licensed for {allowed} only, not {usage_class} use "
            f"(licence: {entry.licence})",
            fix=f"pick a model allowed for {usage_class} use{hint} or change usage_class",
            field=field,
        )

    # The hash helpers, reachable from the registry as well as the module.
    weights_hash = staticmethod(weights_hash)
    verify_weights = staticmethod(verify_weights)


def parse_entry(model: dict[str, Any], source: str | None = None) -> ModelEntry:
    """A ModelEntry dump (as a backend receives it) back into a checked entry."""
    if isinstance(model, ModelEntry):
        return model
    return documents.parse(ModelEntry, dict(model), "ModelEntry", source)
