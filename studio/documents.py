"""Read YAML/JSON documents into pydantic models with errors that name the field path,
the bad value and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from studio.errors import ManyErrors, StudioError, quote
from studio.versioning import upgrade

M = TypeVar("M", bound=BaseModel)

# Extra advice per pydantic error type; the message itself already says what was wrong.
_FIXES = {
    "missing": "add it",
    "extra_forbidden": "remove it (or check its spelling)",
    "literal_error": "use one of the allowed values",
    "enum": "use one of the allowed values",
    "greater_than": "use a larger number",
    "greater_than_equal": "use a larger number",
    "less_than_equal": "use a smaller number",
    "less_than": "use a smaller number",
    "string_too_short": "write something here",
    "too_short": "add at least one entry",
    "string_pattern_mismatch": "match the pattern shown",
    "int_parsing": "write a whole number",
    "float_parsing": "write a number",
}

# libyaml's safe loader where PyYAML has it (the same documents, about ten times faster: a
# server job's submit reads the whole catalog of specs, styles, models and voices), else
# PyYAML's own.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_SCHEMA_CMD = {"Brief": "brief", "ChannelSpec": "spec", "StylePack": "style", "ModelEntry": "model", "Voice": "voice", "MusicTrack": "track"}


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def validation_errors(exc: ValidationError, source: str | None, family: str) -> ManyErrors:
    errors: list[StudioError] = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        bad = err.get("input")
        what = msg[0].lower() + msg[1:] if msg else "invalid"
        if err["type"] != "missing" and not isinstance(bad, (dict, list)):
            what = f"{quote(bad)}: {what}"
        errors.append(
            StudioError(
                what,
                fix=_FIXES.get(err["type"], f"see `studio schema {_SCHEMA_CMD.get(family, family.lower())}`"),
                field=field_path(loc),
                source=source,
            )
        )
    return ManyErrors(errors)


def read_mapping(path: Path) -> dict[str, Any]:
    src = str(path)
    if not path.exists():
        raise StudioError("file not found", fix="check the path", source=src)
    if path.is_dir():
        raise StudioError("is a folder, not a file", fix="pass a .yaml or .json file", source=src)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise StudioError(f"cannot be read ({e})", fix="pass a UTF-8 YAML or JSON file", source=src) from e
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.load(text, Loader=SAFE_LOADER)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        if isinstance(e, json.JSONDecodeError):
            where = f" at line {e.lineno}, column {e.colno}"
        raise StudioError(
            f"is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}{where}",
            fix="fix the syntax there",
            source=src,
        ) from e
    if not isinstance(data, dict):
        raise StudioError(
            "must be a mapping of fields, not " + type(data).__name__,
            fix="start the file with `schema:` and the fields",
            source=src,
        )
    return data


def parse(model: type[M], data: dict[str, Any], family: str, source: str | None) -> M:
    doc = upgrade(data, family, source)
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        raise validation_errors(e, source, family) from None


def load(path: str | Path, model: type[M], family: str) -> M:
    path = Path(path)
    return parse(model, read_mapping(path), family, str(path))
