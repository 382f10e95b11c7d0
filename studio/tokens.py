"""How many prompt tokens a keyframe model reads, counted with the model's own tokenizer.

SD 1.5 and SDXL encode the prompt with CLIP text encoders that have 77 positions (the
start and end tokens included): anything past that is silently dropped. SD3 and FLUX
also read the prompt with a T5 encoder whose length is the pipeline's
``max_sequence_length`` (256 or 512): when the model entry sets it in ``call_args`` (the
backend passes it to the pipeline), that is the budget, counted with the T5 tokenizer.
Without it the budget is the CLIP one (77): the pipeline default is not written in the
entry, so the smaller length is the one we can be sure of.

Only the tokenizer files are read (``model_index.json`` and ``tokenizer*/``), never
weights, and each tokenizer is loaded once per process. A hub source is resolved from the
local hub cache only (``local_files_only``); a tokenizer that cannot be loaded that way
is an error before anything is generated, not a guess: a budget from an estimate would
cut different words on different machines, and the prompt record (and its hash) would
differ with it. transformers and huggingface_hub are imported when first needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from studio.errors import StudioError

# CLIP text encoders have 77 positions; used when a tokenizer does not say its length.
CLIP_POSITIONS = 77
# transformers' "no limit" sentinel for model_max_length is about 1e30.
_NO_LIMIT = 1_000_000


@dataclass(frozen=True)
class TokenBudget:
    """The most tokens the model reads from one prompt, and the tokenizers that count
    them. ``count`` is the largest count over the tokenizers (SDXL has two CLIP ones),
    special tokens included, so ``count(text) <= max_tokens`` means nothing is dropped."""

    max_tokens: int
    encoder: str  # "clip" or "t5": which text encoder the budget is for
    names: tuple[str, ...]  # "subfolder:Class", recorded with the prompt
    tokenizers: tuple[Any, ...]

    def count(self, text: str) -> int:
        # verbose=False: an over-long prompt is what is being measured, not a mistake.
        return max(len(tok(text, truncation=False, verbose=False)["input_ids"]) for tok in self.tokenizers)

    def describe(self) -> dict[str, Any]:
        return {"tokenizer": list(self.names), "encoder": self.encoder, "max_tokens": self.max_tokens}


def model_folder(entry: Any) -> Path:
    """The entry's local folder; for a hub source the cached snapshot of its revision
    (never downloaded here)."""
    src = entry.source
    if src.path is not None:
        folder = Path(src.path)
        if not folder.is_dir():
            raise StudioError(
                f"model {entry.id!r}: folder {folder} not found, so its tokenizer cannot be "
                "read to fit the prompts", fix="check source.path in the model entry",
                stage="prompts", field="keyframe_model")
        return folder
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(
            src.hub_id, revision=src.revision, local_files_only=True,
            allow_patterns=["model_index.json", "tokenizer*/*"]))
    except Exception as e:
        raise StudioError(
            f"model {entry.id!r}: {src.hub_id}@{src.revision} is not in the local hub cache, "
            "so its tokenizer cannot be read to fit the prompts to it "
            f"({type(e).__name__})",
            fix=f"fetch it first (`hf download {src.hub_id} --revision {src.revision}`; the "
            "prompts need only `--include model_index.json 'tokenizer*/*'`), or point "
            "source.path at a local copy",
            stage="prompts", field="keyframe_model") from e


def _tokenizer_classes(folder: Path) -> list[tuple[str, str | None]]:
    """(subfolder, class name) of each tokenizer: from model_index.json when there is one
    (the class the pipeline itself loads), else every ``tokenizer*`` folder (class from
    its own config)."""
    index = folder / "model_index.json"
    if index.is_file():
        doc = json.loads(index.read_text(encoding="utf-8"))
        return sorted(
            (name, value[1]) for name, value in doc.items()
            if name.startswith("tokenizer") and isinstance(value, list) and len(value) == 2
            and value[1] is not None
        )
    return sorted((p.name, None) for p in folder.glob("tokenizer*") if p.is_dir())


@lru_cache(maxsize=32)
def _load(folder: str, subfolder: str, cls_name: str | None) -> Any:
    import transformers

    cls = getattr(transformers, cls_name, None) if cls_name else transformers.AutoTokenizer
    if cls is None or not hasattr(cls, "from_pretrained"):
        cls = transformers.AutoTokenizer
    return cls.from_pretrained(str(Path(folder) / subfolder), local_files_only=True)


def _max_length(tok: Any) -> int:
    n = int(getattr(tok, "model_max_length", 0) or 0)
    return n if 0 < n < _NO_LIMIT else CLIP_POSITIONS


def budget_for(entry: Any) -> TokenBudget:
    """The prompt budget of a keyframe model entry (see the module docstring)."""
    folder = model_folder(entry)
    seq = entry.call_args.get("max_sequence_length")
    return _budget(str(folder), int(seq) if isinstance(seq, int) and seq > 0 else None, entry.id)


@lru_cache(maxsize=32)
def _budget(folder: str, max_sequence_length: int | None, model_id: str) -> TokenBudget:
    classes = _tokenizer_classes(Path(folder))
    loaded = []
    for sub, cls_name in classes:
        try:
            loaded.append((sub, cls_name, _load(folder, sub, cls_name)))
        except Exception as e:
            raise StudioError(
                f"model {model_id!r}: tokenizer {sub}/ in {folder} cannot be loaded "
                f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})",
                fix="check the model folder is complete (model_index.json and tokenizer files)",
                stage="prompts", field="keyframe_model") from e
    if not loaded:
        raise StudioError(
            f"model {model_id!r} has no text tokenizer in {folder}, so prompts cannot be fitted to it",
            fix="use a text-conditioned diffusers model folder (with tokenizer/)",
            stage="prompts", field="keyframe_model")

    def name(sub: str, cls_name: str | None, tok: Any) -> str:
        return f"{sub}:{cls_name or type(tok).__name__}"

    t5 = [x for x in loaded if "T5" in (x[1] or type(x[2]).__name__)]
    if max_sequence_length is not None and t5:
        return TokenBudget(max_sequence_length, "t5", tuple(name(*x) for x in t5), tuple(x[2] for x in t5))
    # Every CLIP encoder must read the whole prompt (SDXL's two see the same text).
    chosen, encoder = ([x for x in loaded if x not in t5], "clip") if len(t5) < len(loaded) else (loaded, "t5")
    return TokenBudget(min(_max_length(x[2]) for x in chosen), encoder,
                       tuple(name(*x) for x in chosen), tuple(x[2] for x in chosen))
