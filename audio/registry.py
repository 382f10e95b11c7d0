"""Audio backends: built-in registries and two entry-point groups, mirroring
``shots.backends``.

* text to speech (``studio.tts_backends``): a backend is built from a ``VoiceEntry``
  (``audio.voices``) and offers ``check_text(text, *, beat)`` and
  ``synthesize(text, out_wav, *, beat, deterministic=None) -> dict`` (the record format
  of ``audio.tts.PiperBackend``: a mono 16-bit WAV, ``sentences`` with their times);
* text to music (``studio.music_backends``): built from a ``ModelEntry`` of kind
  ``text-to-music`` (``studio.models``), offering
  ``generate(prompt, duration, out_wav, *, seed) -> dict``.

One backend per file, imported lazily by name only when a voice or a model asks for it
(listing voices or models must not import torch); a plugin that fails to import fails
loudly, naming its entry point and the import error, instead of silently disappearing.

Third-party backends register in their ``pyproject.toml``::

    [project.entry-points."studio.tts_backends"]
    myvoice = "mypkg.voice:MyVoiceBackend"

A backend class may define ``availability() -> str | None`` (a static or class method):
``None`` when it can run here, else why not; ``available_backends`` shows it, so
``studio plugins`` tells an operator that e.g. Coqui cannot run beside this torch before a
render finds out.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from studio.errors import StudioError

if TYPE_CHECKING:
    from audio.voices import VoiceEntry
    from studio.models import ModelEntry

TTS_GROUP = "studio.tts_backends"
MUSIC_GROUP = "studio.music_backends"

# name -> "module:Class"; one backend per file.
BUILTIN_TTS: dict[str, str] = {
    "piper": "audio.tts:PiperBackend",
    "transformers-tts": "audio.transformers_tts:TransformersTTSBackend",
    # Optional: importable only where coqui-tts imports (not beside torch 2.13).
    "coqui": "audio.coqui_tts:CoquiBackend",
}
BUILTIN_MUSIC: dict[str, str] = {
    "musicgen": "audio.musicgen:MusicGenBackend",
}

_KINDS: dict[str, tuple[str, dict[str, str], str]] = {
    # kind -> (entry-point group, built-ins, words for messages)
    "tts": (TTS_GROUP, BUILTIN_TTS, "TTS"),
    "music": (MUSIC_GROUP, BUILTIN_MUSIC, "music"),
}


def _plugins(kind: str) -> dict[str, str]:
    group, _, _ = _KINDS[kind]
    return {ep.name: ep.value for ep in entry_points(group=group)}


def backends(kind: str) -> dict[str, str]:
    """name -> "module:Class" of every ``kind`` ("tts" or "music") backend known here;
    a built-in wins over a plugin of the same name."""
    _, builtin, _ = _KINDS[kind]
    found = _plugins(kind)
    found.update(builtin)
    return found


def tts_backend_names() -> list[str]:
    return sorted(backends("tts"))


def is_tts_backend(name: str) -> bool:
    """Whether a voice entry may name ``name`` (checked when the entry is read). Built-ins
    are answered without scanning installed packages."""
    return name in BUILTIN_TTS or name in _plugins("tts")


def _target(kind: str, name: str) -> tuple[str, str]:
    """("module:Class", where it was registered) for a backend name."""
    group, builtin, words = _KINDS[kind]
    if name in builtin:
        return builtin[name], "built-in"
    plugins = _plugins(kind)
    if name in plugins:
        return plugins[name], f"entry point {name!r} in group {group}"
    raise StudioError(
        f"unknown {words} backend {name!r}",
        fix="use one of: " + ", ".join(sorted(backends(kind))) + f" (or install a {group} plugin)",
        field="backend",
    )


def load_backend_class(kind: str, name: str) -> type:
    """The backend class, imported now; a broken plugin raises naming its entry point."""
    target, where = _target(kind, name)
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except Exception as e:  # a broken plugin must say why, loudly
        raise StudioError(
            f"{_KINDS[kind][2]} backend {name!r} ({where}: {target}) failed to load: "
            f"{type(e).__name__}: {e}",
            fix="install what it needs, or uninstall the package that registers it",
            field="backend",
        ) from e


def _construct(cls: type, entry: Any, kwargs: dict[str, Any]) -> Any:
    # PiperBackend (CPU only) takes no device: pass only what the constructor accepts, so
    # simple plugins need not swallow arguments they have no use for.
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return cls(entry, **kwargs)


def tts_backend(entry: VoiceEntry, *, deterministic: bool = False, device: str = "auto") -> Any:
    """The voice's backend, loaded (model weights and all): call once per process."""
    cls = load_backend_class("tts", entry.backend)
    return _construct(cls, entry, {"deterministic": deterministic, "device": device})


def music_backend(entry: ModelEntry, *, device: str = "auto", local_files_only: bool = True) -> Any:
    """The text-to-music model's backend, loaded."""
    cls = load_backend_class("music", entry.backend)
    return _construct(cls, entry, {"device": device, "local_files_only": local_files_only})


def available_backends() -> dict[str, str]:
    """``"tts:<name>"`` / ``"music:<name>"`` -> one status line for ``studio plugins``:
    ``"ok <module:Class>"``, or ``"FAILED <module:Class>: <why>"`` when the module does not
    import or its ``availability()`` says it cannot run here."""
    rows: dict[str, str] = {}
    for kind in _KINDS:
        for name, target in sorted(backends(kind).items()):
            try:
                cls = load_backend_class(kind, name)
                check = getattr(cls, "availability", None)
                why = check() if callable(check) else None
            except StudioError as e:
                why = e.what
            except Exception as e:  # a plugin's own check must not hide the others
                why = f"availability check failed: {type(e).__name__}: {e}"
            rows[f"{kind}:{name}"] = f"ok {target}" if why is None else f"FAILED {target}: {why}"
    return rows
