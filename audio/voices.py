"""The voice registry: which text-to-speech voices Studio may use, as versioned data.

Each voice is one ``Voice`` document (``"schema": "Voice.1"``) shipped in
``studio/data/voices/*.yaml`` and extendable from the user's own folder (``user_dir``,
``$STUDIO_VOICES_DIR``); a user entry with the same ``id`` replaces a shipped one.

An entry records where the model lives (an installed Python package, a local folder, or
a model hub repository at a revision), which backend runs it (``piper`` in process; GPU
backends such as ``transformers-tts`` on a Ray actor with ``gpus`` per actor; plugins from
the ``studio.tts_backends`` entry-point group, see ``audio.registry``), its language and
the script its phonemiser reads, the licence as recorded from the
package *and* its model card, the usage classes studio policy allows, and for a cloned
or custom voice the speaker's consent. ``check_voice`` refuses a voice before anything is
rendered, in the same words as the model registry's ``check_usage``.
"""

from __future__ import annotations

import importlib.util
import os
from datetime import date
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
ENV_DIR = "STUDIO_VOICES_DIR"
ID_RE = r"^[a-z0-9][a-z0-9._-]*$"
HUB_RE = r"^[\w.-]+/[\w.-]+$"

UsageClass = Literal["experiment", "internal", "public"]


class VoiceSource(BaseModel):
    """Where the model is: a module of an installed package, a folder on disk, or a model
    hub repository (``hub_id`` at ``revision``: transformers backends only).

    ``model``/``config``/``model_card`` are relative to the module's folder (package) or to
    ``path`` (folder); ``path``, ``vocoder_path`` and ``speaker_embedding`` are relative to
    the entry file when not absolute. For a transformers voice ``model`` is optional: the
    subfolder holding ``config.json`` (default: the folder itself).
    """

    model_config = ConfigDict(extra="forbid")
    package: str | None = Field(None, description="the distribution name, for pip")
    package_version: str | None = None
    module: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    path: str | None = None
    hub_id: str | None = Field(None, pattern=HUB_RE, description="owner/name on the model hub")
    revision: str | None = Field(None, description="commit (preferred), tag or branch of hub_id")
    # Offline-first, like the model registry: a worker reads the local hub cache and never
    # downloads at run time unless the entry says so.
    offline: bool = Field(True, description="load hub_id with local_files_only (no download)")
    model: str | None = Field(None, min_length=1)
    config: str | None = None
    model_card: str | None = None
    upstream: str | None = None
    # SpeechT5-style voices: a separate vocoder and the speaker's x-vector (.npy).
    vocoder_path: str | None = None
    vocoder_hub_id: str | None = Field(None, pattern=HUB_RE)
    vocoder_revision: str | None = None
    speaker_embedding: str | None = Field(None, description="a .npy file with the speaker vector")

    @model_validator(mode="after")
    def _one_place(self) -> VoiceSource:
        if sum(x is not None for x in (self.module, self.path, self.hub_id)) != 1:
            raise ValueError("give exactly one of module (an installed package), path (a folder) "
                             "or hub_id (a model hub repository)")
        if self.hub_id is not None and not self.revision:
            raise ValueError("a hub source needs a revision (a commit hash pins it)")
        if self.hub_id is None and self.revision is not None:
            raise ValueError("revision applies to hub_id sources only")
        if self.vocoder_path is not None and self.vocoder_hub_id is not None:
            raise ValueError("give at most one of vocoder_path or vocoder_hub_id")
        if self.vocoder_hub_id is not None and not self.vocoder_revision:
            raise ValueError("a hub vocoder needs vocoder_revision (a commit hash pins it)")
        return self


class Consent(BaseModel):
    """The speaker's consent to a cloned/custom voice: who gave it, when, for what."""

    model_config = ConfigDict(extra="forbid")
    who: str = Field(min_length=1)
    when: date
    scope: str = Field(min_length=1, description="what the voice may be used for")
    reference: str | None = Field(None, description="where the signed release is kept")


class VoiceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_: str = Field("Voice.1", alias="schema")
    id: str = Field(pattern=ID_RE)
    title: str = Field(min_length=1)
    kind: Literal["stock", "cloned", "custom"]
    # A built-in (piper, transformers-tts, coqui) or a ``studio.tts_backends`` plugin: a
    # name, not a Literal, so plugins need no change here; unknown names are refused below.
    backend: str = Field(pattern=ID_RE)
    source: VoiceSource
    language: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$", description="e.g. en_US")
    # The Unicode script the phonemiser reads (Latin, Cyrillic, ...): text with no letters
    # in it is refused instead of being spelled out ("Chinese letter", "grinning face").
    script: str = Field("Latin", pattern=r"^[A-Z][a-z]+$")
    sample_rate: int = Field(gt=0, le=192000)
    licence: str = Field(min_length=1)
    licence_notes: str = ""
    usage_classes: list[UsageClass] = Field(min_length=1)
    usage_reason: str = Field("", description="why usage_classes is what it is")
    consent: Consent | None = None
    # The rights ledger's terms beyond licence and usage classes (licence id, licensor,
    # territories, media, channels, term), and for a cloned voice whose voice it is
    # (``rights.real_person``) with their consent: studio.rights.voice_record.
    rights: RightsTerms | None = None
    # Where it runs. Piper is in process on the CPU; other backends run on one Ray actor
    # per voice that asks for ``gpus`` (fractions share a GPU between small voices).
    gpus: float = Field(0.0, ge=0, le=8, description="GPUs per actor (GPU backends)")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: cuda when the actor has a GPU, else cpu; cpu: never a GPU")
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    # Backend-specific knobs, recorded with every line. For transformers-tts, by family:
    # VITS: speaking_rate, noise_scale, noise_scale_duration are set on the model, other
    # keys go to forward() only where its signature has them; SpeechT5: only the keys
    # generate_speech() takes; Bark: all of them to BarkModel.generate, which hands
    # semantic_*/coarse_*/fine_* keys to one sub-model (e.g. semantic_min_new_tokens) and
    # the rest to all three; other families: all to generate() (or, without one, the keys
    # forward() takes).
    call_args: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="keyword arguments of the model call (Bark: all to BarkModel.generate, "
        "e.g. semantic_min_new_tokens; VITS/SpeechT5: those the call takes), recorded with "
        "every line")
    voice_preset: str | None = Field(None, description="Bark: the speaker preset, e.g. v2/en_speaker_6")
    seed: int = Field(0, ge=0, description="base seed of deterministic synthesis")

    @model_validator(mode="after")
    def _check(self) -> VoiceEntry:
        if len(set(self.usage_classes)) != len(self.usage_classes):
            raise ValueError("usage_classes lists a class twice")
        from audio.registry import is_tts_backend, tts_backend_names

        if not is_tts_backend(self.backend):
            raise ValueError(f"unknown TTS backend {self.backend!r}: use one of "
                             + ", ".join(tts_backend_names()) + " (or a studio.tts_backends plugin)")
        if self.backend == "piper":
            # Piper reads one ONNX file and its JSON config: no hub, no GPU.
            if self.source.hub_id is not None or self.source.model is None:
                raise ValueError("a piper voice needs source.model (the .onnx file) in a module "
                                 "or path, not a hub_id")
        if self.device == "cpu" and self.gpus:
            raise ValueError("device cpu asks for no GPU: set gpus: 0 or device: auto")
        # Refused when the entry is read, so a cloned voice without leave never reaches
        # a render; check_voice repeats it for entries built in code.
        if self.kind == "cloned" and self.consent is None:
            raise ValueError(f"voice {self.id!r} is a cloned voice with no consent record — "
                             "add consent: {who, when, scope}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # rights came later: left out while unset, so an entry without it dumps (and keys
        # its lines) as it did.
        out = handler(self)
        if isinstance(out, dict) and out.get("rights", 0) is None:
            out.pop("rights")
        return out

    @property
    def real_person(self) -> str | None:
        """Whose voice this is when it is a real person's: ``rights.real_person``, else the
        consenting speaker of a cloned voice (a stock voice is nobody's in particular)."""
        if self.rights is not None and self.rights.real_person:
            return self.rights.real_person
        return self.consent.who if self.kind == "cloned" and self.consent is not None else None

    def ledger_rights(self) -> dict[str, Any]:
        """What a voice line records of its voice's rights (AudioAsset.rights), which
        studio.rights.voice_record makes the ledger's record of."""
        out: dict[str, Any] = {"voice": self.id, "kind": self.kind, "licence": self.licence,
                               "usage_classes": list(self.usage_classes),
                               "consent": self.consent.model_dump(mode="json") if self.consent else None}
        src = self.source
        out["licensor"] = (src.hub_id.split("/")[0] if src.hub_id else
                           f"{src.package} (package)" if src.package else None)
        if src.upstream:
            out["provenance"] = src.upstream
        if self.real_person:
            out["real_person"] = self.real_person
        if self.rights is not None:
            out["terms"] = self.rights.model_dump(mode="json", exclude_none=True)
        return out

    def files(self) -> dict[str, Path | None]:
        """Absolute paths of the model, its config and model card (not checked to exist)."""
        src = self.source
        if src.hub_id is not None:
            # Resolved by the backend from the hub cache (see audio.transformers_tts).
            return {"model": None, "config": None, "model_card": None}
        if src.module is not None:
            spec = importlib.util.find_spec(src.module)
            if spec is None or not spec.submodule_search_locations:
                pip = f"pip install {src.package}" if src.package else "install it"
                raise StudioError(
                    f"voice {self.id!r} needs the Python package {src.module!r}, which is not installed",
                    fix=pip, stage="voice", field="voice",
                )
            base = Path(next(iter(spec.submodule_search_locations)))
        else:
            base = Path(str(src.path))
        model = base / src.model if src.model else base
        return {
            "model": model,
            "config": base / src.config if src.config else Path(f"{model}.json"),
            "model_card": base / src.model_card if src.model_card else None,
        }


def _voice_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


class VoiceRegistry:
    """All voices known to this process: the shipped ones, then ``user_dir``'s."""

    def __init__(self, user_dir: Path | None = None) -> None:
        self.entries: dict[str, VoiceEntry] = {}
        self.paths: dict[str, Path] = {}
        pkg = resources.files("studio") / "data" / "voices"
        if not pkg.is_dir():
            raise StudioError(
                "the shipped voice entries (studio/data/voices) are missing from this install",
                fix="reinstall Studio; packagers: include data/voices/*.yaml in package-data",
                source=str(pkg),
            )
        for item in sorted(pkg.iterdir(), key=lambda p: p.name):
            if item.name.endswith((".yaml", ".yml", ".json")):
                self._add(Path(str(item)))
        if user_dir is not None:
            folder = Path(user_dir)
            if not folder.is_dir():
                raise StudioError("is not a folder", fix=f"create it or unset {ENV_DIR}",
                                  source=str(folder))
            for p in _voice_files(folder):
                self._add(p)

    @classmethod
    def from_env(cls) -> VoiceRegistry:
        folder = os.environ.get(ENV_DIR)
        return cls(Path(folder) if folder else None)

    def _add(self, path: Path) -> None:
        entry = documents.load(path, VoiceEntry, "Voice")
        # Relative to the entry file, so a folder of entries and models moves as one.
        update = {}
        for key in ("path", "vocoder_path", "speaker_embedding"):
            value = getattr(entry.source, key)
            if value is not None:
                p = Path(value).expanduser()
                update[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
        if update:
            entry = entry.model_copy(update={"source": entry.source.model_copy(update=update)})
        self.entries[entry.id] = entry
        self.paths[entry.id] = path

    def ids(self) -> list[str]:
        return sorted(self.entries)

    def get(self, voice_id: str, field: str = "voice") -> VoiceEntry:
        try:
            return self.entries[voice_id]
        except KeyError:
            raise StudioError(
                f"unknown voice {voice_id!r}",
                fix="use one of: " + ", ".join(self.ids()) + f" (or add a Voice file to {ENV_DIR})",
                stage="voice", field=field,
            ) from None

    def allowed_for(self, usage_class: str) -> list[str]:
        return [i for i in self.ids() if usage_class in self.entries[i].usage_classes]


def check_voice(entry: VoiceEntry, usage_class: str, *, field: str = "usage_class",
                registry: VoiceRegistry | None = None) -> None:
    """Refuse, before any rendering, a voice that policy or consent does not allow."""
    if usage_class not in USAGE_CLASSES:
        raise StudioError(
            f"unknown usage class {usage_class!r}",
            fix="use one of: " + ", ".join(USAGE_CLASSES), stage="voice", field=field,
        )
    # Consent first: a cloned voice without it is refused for every usage class, even
    # experiments, because the harm (someone's voice used without leave) is the same.
    if entry.kind == "cloned" and entry.consent is None:
        raise StudioError(
            f"voice {entry.id!r} is a cloned voice with no consent record",
            fix="add consent: {who, when, scope} to its entry (the speaker, the date they "
                "agreed, and what they agreed to)",
            stage="voice", field="consent",
        )
    if usage_class in entry.usage_classes:
        return
    allowed = " and ".join(c for c in USAGE_CLASSES if c in entry.usage_classes)
    others = [i for i in registry.allowed_for(usage_class)] if registry else []
    hint = f" (e.g. {', '.join(others)})" if others else ""
    why = entry.usage_reason.strip() or entry.licence.strip()
    raise StudioError(
        f"voice {entry.id!r} is licensed for {allowed} use only, not {usage_class} ({why})",
        fix=f"pick a voice licensed for {usage_class} use{hint} or change usage_class",
        stage="voice", field=field,
    )
