"""A submitted brief, from raw bytes to a checked job request, refusing what would hurt the
server and reporting what is wrong in the CLI's own words.

The body is JSON or YAML (by Content-Type), either the brief itself or an envelope
``{brief: {...}, priority, labels, dry_run}``. Order of the checks:

1. size: a body over the limit is refused (413) before it is read whole;
2. YAML bombs: a YAML body is scanned as events first, and refused (422) if it uses an
   anchor or alias (``yaml.safe_load`` expands aliases, so ten nested lists of ten aliases
   become ten billion nodes), nests deeper than MAX_DEPTH or has more than MAX_EVENTS
   nodes. The scan builds nothing, so it costs what reading the text costs;
3. syntax and shape: ``studio.documents.read_mapping``, the function the CLI reads a brief
   file with, so a syntax error reads exactly as the CLI says it;
4. paths: a brief sent over HTTP has no folder of its own, so a relative path in it
   (reference images, music and effects library folders) cannot mean anything; those, and
   absolute paths outside STUDIO_ASSETS_ROOTS and the brief's project's uploads folder
   (``HOME/uploads/PROJECT``, filled by ``POST /v1/uploads``), are refused naming the
   field; another project's uploads are refused as such;
5. the brief: ``studio.pipeline.prepare`` (or ``plan`` for a dry run), the very checks
   `studio render` makes, every problem reported at once with its field path, its fix and
   the line of the document it is on.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from studio import documents
from studio.assets import uploads_folder
from studio.brief import Brief
from studio.errors import ManyErrors, StudioError, quote

# Nodes (scalars, lists, mappings) a YAML body may hold, and how deep it may nest. The
# example brief has about 150 nodes and nests 4 deep.
MAX_EVENTS = 100_000
MAX_DEPTH = 64
ENVELOPE_OPTIONS = ("priority", "labels", "dry_run")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")
MAX_LABELS = 32
MAX_LABEL_VALUE = 200

JSON_TYPES = {"application/json"}
YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ApiError(Exception):
    """An answer other than success: the HTTP status, what was wrong, the fix and (for a
    refused brief) each problem."""

    def __init__(self, status: int, detail: str, fix: str = "", problems: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.fix = fix
        self.problems = problems or []
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {"detail": self.detail, "fix": self.fix, "problems": self.problems}


def media_kind(content_type: str | None) -> str:
    """``json`` or ``yaml`` from a Content-Type header; 415 for anything else."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
        return "json"
    if media in YAML_TYPES:
        return "yaml"
    raise ApiError(415, f"cannot read a body of type {quote(media or '(none)')}",
                   fix="send the brief as Content-Type: application/json or application/yaml")


def refuse_yaml_bombs(text: str) -> None:
    """Refuse anchors and aliases, deep nesting and huge node counts, from the event stream
    (nothing is built). A syntax error is left for ``read_mapping`` to report in the CLI's
    words."""
    depth = events = 0
    try:
        for ev in yaml.parse(text, Loader=_Loader):
            events += 1
            line = ev.start_mark.line + 1 if ev.start_mark is not None else None
            at = f" (line {line})" if line else ""
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None):
                raise ApiError(422, f"the YAML uses an anchor or alias (& or *){at}; the server refuses them, "
                                    "since aliases can expand a small document into billions of nodes",
                               fix="write each value out in full (or send the brief as JSON)")
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ApiError(422, f"the YAML nests more than {MAX_DEPTH} levels deep{at}",
                                   fix="a brief nests a few levels; check the document")
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            if events > MAX_EVENTS:
                raise ApiError(422, f"the YAML has more than {MAX_EVENTS:,} values",
                               fix="a brief has a few hundred; check the document")
    except yaml.YAMLError:
        return


_LAST_PART = re.compile(r"(\.[^.\[]+|\[\d+\])$")
_AT_LINE = re.compile(r"^is not valid (?:YAML|JSON) at line (\d+),")


def field_lines(text: str, under: str | None = None) -> dict[str, int]:
    """The line (1-based) of each field path (``beats[2].duration``) in a YAML or JSON
    document (of the mapping at key ``under``, for an envelope). Empty if it cannot be
    read: lines are a help, not a check."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError, ValueError):
        return {}
    if under is not None and isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if getattr(k, "value", None) == under), None)
    lines: dict[str, int] = {}

    def walk(n: Any, path: str) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                p = f"{path}.{k.value}" if path else str(k.value)
                lines.setdefault(p, k.start_mark.line + 1)
                walk(v, p)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                p = f"{path}[{i}]"
                lines.setdefault(p, v.start_mark.line + 1)
                walk(v, p)

    if node is not None:
        walk(node, "")
    return lines


def line_of(field_path: str | None, lines: dict[str, int]) -> int | None:
    """The line of ``field_path``, else of its nearest enclosing field (a missing field is
    reported on the mapping that lacks it)."""
    path = field_path or ""
    while path:
        if path in lines:
            return lines[path]
        cut = _LAST_PART.sub("", path)
        if cut == path:
            break
        path = cut
    return None


def flat(errors: list[StudioError]) -> list[StudioError]:
    out: list[StudioError] = []
    for e in errors:
        out += flat(e.errors) if isinstance(e, ManyErrors) else [e]
    return out


def problem(e: StudioError, lines: dict[str, int], hide: set[str]) -> dict[str, Any]:
    """One problem for the 422 body. ``text`` is the CLI's line without the file name the
    CLI starts it with (the request has none); a server-side file (a style's LUT) stays."""
    source = None if e.source is None or str(e.source) in hide else str(e.source)
    text = StudioError(e.what, fix=e.fix, stage=e.stage, shot=e.shot, field=e.field, source=source).line()
    field_path = None if e.field in (None, "(document)") else e.field
    line = line_of(field_path, lines)
    if line is None and (syntax := _AT_LINE.search(e.what)):  # read_mapping's "not valid YAML at line N"
        line = int(syntax.group(1))
    return {"field": e.field, "message": e.what, "fix": e.fix, "line": line,
            "stage": e.stage, "source": source, "text": text}


def refused(errors: list[StudioError], lines: dict[str, int], hide: set[str]) -> ApiError:
    errors = flat(errors)
    n = len(errors)
    return ApiError(422, "the brief has 1 problem" if n == 1 else f"the brief has {n} problems",
                    fix="fix each problem listed (`studio plan BRIEF` prints the same lines)",
                    problems=[problem(e, lines, hide) for e in errors])


# -- the request's options -----------------------------------------------------------


def check_priority(value: Any, field_name: str = "priority") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise StudioError(f"{quote(value)}: must be a whole number from 0 to 100",
                          fix="use 0 (lowest) to 100 (highest); the default is 50", field=field_name)
    return value


def check_labels(value: Any, field_name: str = "labels") -> dict[str, str]:
    if not isinstance(value, dict):
        raise StudioError("must be a mapping of label names to text", fix="e.g. {team: social, sprint: '12'}",
                          field=field_name)
    if len(value) > MAX_LABELS:
        raise StudioError(f"{len(value)} labels; at most {MAX_LABELS}", fix="drop some", field=field_name)
    for k, v in value.items():
        if not isinstance(k, str) or not LABEL_KEY_RE.match(k):
            raise StudioError(f"label name {quote(k)} is not allowed", field=f"{field_name}.{k}",
                              fix="start with a letter or digit; then letters, digits, _ . - / (64 at most)")
        if not isinstance(v, str) or len(v) > MAX_LABEL_VALUE:
            raise StudioError(f"{quote(v)}: a label's value is text of at most {MAX_LABEL_VALUE} characters",
                              fix="quote it (e.g. '12')", field=f"{field_name}.{k}")
    return dict(value)


def labels_from_query(items: list[str]) -> dict[str, str] | None:
    """``?labels=team=social&labels=sprint=12``."""
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise StudioError(f"{quote(item)} is not key=value", fix="write labels=team=social", field="labels")
        out[key] = value
    return out


# -- paths a server cannot resolve -------------------------------------------------------


def _path_fields(doc: dict[str, Any]) -> list[tuple[str, str, list[Any]]]:
    """(field path, label, where it sits) for every path the raw brief names. Only where
    the types are right: anything else is pydantic's to report."""
    out: list[tuple[str, str, list[Any]]] = []
    for key in ("beats", "characters"):
        items = doc.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            refs = item.get("reference_images") if isinstance(item, dict) else None
            if isinstance(refs, list):
                for j, ref in enumerate(refs):
                    if isinstance(ref, str) and ref.strip():
                        out.append((f"{key}[{i}].reference_images[{j}]", "reference image", [key, i, j]))
    for key, label in (("music", "music library folder"), ("effects", "effects library folder")):
        plan = doc.get(key)
        if isinstance(plan, dict) and isinstance(plan.get("library"), str) and plan["library"].strip():
            out.append((f"{key}.library", label, [key]))
    return out


def _value(doc: dict[str, Any], where: list[Any]) -> str:
    if len(where) == 1:
        return doc[where[0]]["library"]
    key, i, j = where
    return doc[key][i]["reference_images"][j]


def server_path_problems(doc: dict[str, Any], roots: list[Path], uploads_dir: Path | None = None,
                         project_uploads: Path | None = None) -> tuple[list[StudioError], dict[str, Any]]:
    """The brief's relative paths, and absolute ones outside ``roots`` (and outside
    ``project_uploads``, the brief's project's uploads folder), as errors; and a copy of the
    brief without them, for the rest of the checks (so each problem is said once). A path
    in another project's folder under ``uploads_dir`` is refused saying so."""
    roots = [Path(r).expanduser().resolve() for r in roots]
    shown = ", ".join(str(r) for r in roots)
    where = (f"name it by its absolute path under STUDIO_ASSETS_ROOTS ({shown})" if roots else
             "name it by an absolute path under a folder listed in the server's STUDIO_ASSETS_ROOTS "
             "(none is set on this server)")
    upload_fix = "; or upload it (POST /v1/uploads) and name the path the answer gives"
    own_uploads = Path(project_uploads).expanduser().resolve() if project_uploads is not None else None
    all_uploads = Path(uploads_dir).expanduser().resolve() if uploads_dir is not None else None
    errors: list[StudioError] = []
    drop: list[list[Any]] = []
    for field_path, label, at in _path_fields(doc):
        value = _value(doc, at)
        given = Path(value)
        image = label == "reference image"  # uploads are images: library folders are not uploaded
        fix = where + (upload_fix if uploads_dir is not None and image else "")
        allowed = [*roots, own_uploads] if image and own_uploads is not None else roots
        if not given.is_absolute():
            errors.append(StudioError(
                f"{label} {quote(value)} is a relative path, and a brief sent to the server has no folder "
                "to resolve it in", fix=fix, field=field_path))
        else:
            real = Path(os.path.normpath(given)).resolve()
            if any(real == r or real.is_relative_to(r) for r in allowed):
                continue
            if image and own_uploads is not None and all_uploads is not None and real.is_relative_to(all_uploads):
                # Uploads are per project (the uploading token's): a brief names its own
                # project's only, as if the others did not exist to it.
                errors.append(StudioError(
                    f"{label} {quote(value)} is not in this project's uploads ({own_uploads})",
                    fix="upload the image with a token of the brief's project and name the path the answer "
                        "gives", field=field_path))
            else:
                errors.append(StudioError(f"{label} {quote(value)} is outside the server's asset folders",
                                          fix=fix, field=field_path))
        drop.append(at)
    if not drop:
        return errors, doc
    clean = copy.deepcopy(doc)
    for at in sorted(drop, key=lambda a: a[-1] if len(a) == 3 else -1, reverse=True):
        if len(at) == 1:
            clean[at[0]]["library"] = None
            if at[0] == "music" and clean["music"].get("source") == "library":
                # Checked without its library, a library bed would add "no library folder is
                # set" to the problem already reported for it.
                clean["music"]["source"] = "procedural"
        else:
            key, i, j = at
            del clean[key][i]["reference_images"][j]
    return errors, clean


# -- the whole check -----------------------------------------------------------------------


@dataclass
class Submission:
    brief: dict[str, Any]  # as submitted (JSON values), what the job keeps
    project: str
    campaign: str
    brief_sha256: str
    priority: int
    labels: dict[str, str]
    dry_run: bool
    request_sha256: str
    plan: dict[str, Any] | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)


def request_sha256(brief: dict[str, Any], priority: int, labels: dict[str, str]) -> str:
    """What an Idempotency-Key is bound to: the brief and the options, canonical JSON."""
    text = json.dumps({"brief": brief, "priority": priority, "labels": labels}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_submission(raw: bytes, content_type: str | None, settings: Any, *, priority: int | None = None,
                     labels: dict[str, str] | None = None, dry_run: bool | None = None) -> Submission:
    """Everything ``POST /v1/jobs`` checks before it queues anything (see the module's
    docstring); ApiError for the first kind of failure met. ``priority``/``labels``/
    ``dry_run`` come from the query and an envelope's fields override them."""
    from studio.pipeline import plan, prepare

    kind = media_kind(content_type)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(422, f"the body is not UTF-8 (byte {e.start})", fix="send UTF-8 text") from None
    if kind == "yaml":
        refuse_yaml_bombs(text)
    with tempfile.TemporaryDirectory(prefix="studio-api-") as tmp:
        body_path = Path(tmp) / f"request.{kind}"
        brief_path = Path(tmp) / "brief.json"
        hide = {str(body_path), str(brief_path)}
        body_path.write_text(text, encoding="utf-8")
        try:
            doc = documents.read_mapping(body_path)
        except StudioError as e:
            raise refused([e], {}, hide) from None
        except (RecursionError, ValueError) as e:
            raise ApiError(422, f"the {kind.upper()} cannot be read ({type(e).__name__}: nested too deeply "
                                "or a number too long)", fix="check the document") from None
        envelope = "brief" in doc
        lines = field_lines(text, under="brief" if envelope else None)
        option_errors: list[StudioError] = []
        if envelope:
            brief_doc = doc["brief"]
            for key in doc:
                if key != "brief" and key not in ENVELOPE_OPTIONS:
                    option_errors.append(StudioError(
                        "is not a request field", field=str(key),
                        fix=f"a request holds brief and optionally {', '.join(ENVELOPE_OPTIONS)}"))
            if not isinstance(brief_doc, dict):
                raise refused([*option_errors, StudioError(
                    "must be a mapping of the brief's fields", field="brief",
                    fix="put the brief under brief:, or send the brief alone")], {}, hide)
            options = {k: doc[k] for k in ENVELOPE_OPTIONS if k in doc}
        else:
            brief_doc, options = doc, {}
        try:
            chosen_priority = check_priority(options.get("priority", 50 if priority is None else priority))
        except StudioError as e:
            option_errors.append(e)
            chosen_priority = 50
        try:
            chosen_labels = check_labels(options.get("labels", labels or {}))
        except StudioError as e:
            option_errors.append(e)
            chosen_labels = {}
        chosen_dry_run = options.get("dry_run", bool(dry_run))
        if not isinstance(chosen_dry_run, bool):
            option_errors.append(StudioError(f"{quote(chosen_dry_run)}: must be true or false",
                                             fix="write true or false", field="dry_run"))
            chosen_dry_run = False
        # What the job keeps: JSON values only (a YAML date becomes its text, as pydantic
        # would read a quoted one).
        brief_doc = json.loads(json.dumps(brief_doc, default=str))
        uploads_dir = getattr(settings, "uploads_dir", None)
        path_errors, to_check = server_path_problems(
            brief_doc, settings.asset_roots, uploads_dir, uploads_folder(settings, brief_doc.get("project")))
        brief_path.write_text(json.dumps(to_check), encoding="utf-8")
        plan_dict = None
        try:
            if chosen_dry_run:
                the_plan = plan(brief_path, settings=settings)
                plan_dict = the_plan.to_dict()
                plan_dict["brief"] = "(request)"
                checked = documents.load(brief_path, Brief, "Brief")
            else:
                checked = prepare(brief_path, settings).brief
        except StudioError as e:
            raise refused([*option_errors, *path_errors, e], lines, hide) from None
        if option_errors or path_errors:
            raise refused([*option_errors, *path_errors], lines, hide)
    return Submission(brief=brief_doc, project=checked.project, campaign=checked.campaign,
                      brief_sha256=checked.content_hash(), priority=chosen_priority, labels=chosen_labels,
                      dry_run=chosen_dry_run, plan=plan_dict,
                      request_sha256=request_sha256(brief_doc, chosen_priority, chosen_labels))

