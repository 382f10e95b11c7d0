"""The ``studio`` command.

User errors print one line each (``studio: error: ...``) and exit with code 2.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from studio.errors import StudioError


def _fail(e: StudioError) -> None:
    for line in e.lines():
        click.echo(f"studio: error: {line}", err=True)
    sys.exit(e.exit_code)


class Terminated(KeyboardInterrupt):
    """SIGTERM (how docker, Kubernetes and systemd stop a process), handled like Ctrl-C:
    the run cleans up and is recorded as cancelled; the exit code is 143 (128 + 15)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    # Once: a second SIGTERM (a supervisor repeating itself) must not cut the cleanup short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"stopped by signal {signum} (SIGTERM)")


@contextmanager
def _sigterm_cancels() -> Iterator[None]:
    """While the block runs, SIGTERM raises Terminated in the main thread. (The pipeline
    puts this handler back after Ray's start-up replaces it with a plain exit.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. under a test runner)
        return
    before = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


class StudioGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StudioError as e:
            _fail(e)
        except KeyboardInterrupt as e:
            click.echo("studio: cancelled; nothing was published and the run is recorded as cancelled",
                       err=True)
            sys.exit(143 if isinstance(e, Terminated) else 130)


@click.group(cls=StudioGroup)
@click.version_option(package_name="studio")
def main() -> None:
    """Studio: brief in, deliverables out, every step recorded."""


def _regenerate(value: str | None) -> bool | set[str]:
    """--regenerate alone: every gated step; --regenerate=b1,b2: those beats only."""
    if value is None:
        return False
    if value in ("", "all"):
        return True
    return {b.strip() for b in value.split(",") if b.strip()}


def _print_plan(the_plan: Any, as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(the_plan.to_dict(), indent=2))
    else:
        for line in the_plan.lines():
            click.echo(line)


REGENERATE_HELP = ("Remake generative steps whose model or voice changed (they are refused "
                   "otherwise); =BEAT[,BEAT] for those beats only.")


@main.command()
@click.argument("brief", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--candidates", type=click.IntRange(1, 64), default=None, help="Override candidates per beat.")
@click.option("--backend", default="procedural", show_default=True, help="Keyframe backend.")
@click.option("--dry-run", is_flag=True, help="Print the plan (studio plan) and render nothing.")
@click.option("--regenerate", is_flag=False, flag_value="all", default=None, help=REGENERATE_HELP)
@click.option("--force", is_flag=True, help="Render even when --out already holds exactly this.")
@click.option("--quiet", is_flag=True, help="Only warnings and errors.")
@click.option("--log-json", is_flag=True, help="Machine logs: one JSON object per line on stderr.")
def render(brief: Path, out: Path, candidates: int | None, backend: str, dry_run: bool, regenerate: str | None,
           force: bool, quiet: bool, log_json: bool) -> None:
    """Render BRIEF into deliverables under --out. Steps the records hold are reused; a
    render of exactly what --out holds does nothing (--force renders anyway)."""
    from studio.pipeline import plan as make_plan
    from studio.pipeline import render as run_render
    from studio.progress import make_reporter

    if dry_run:
        _print_plan(make_plan(brief, candidates=candidates, backend=backend, regenerate=_regenerate(regenerate),
                              out_dir=out), log_json)
        return
    reporter = make_reporter(quiet, log_json)
    try:
        with _sigterm_cancels():
            ctx = run_render(brief, out, reporter=reporter, candidates=candidates, backend=backend,
                             regenerate=_regenerate(regenerate), force=force)
    finally:
        reporter.close()
    if log_json:
        return
    if getattr(ctx, "up_to_date", None):
        up = ctx.up_to_date
        click.echo(f"up to date: {up['out']} holds run {up['run_id']} (v{up['version']:03d}), made from "
                   "exactly this brief and these inputs; nothing rendered (--force renders anyway)")
        return
    if not quiet:
        click.echo(f"run {ctx.run_id}: {len(ctx.deliverables)} deliverables in {ctx.out_dir}")
        for d in ctx.deliverables:
            click.echo(f"  {d['spec']:<26} {ctx.out_dir / d['path']}")
        click.echo(f"  manifest                   {ctx.out_dir / 'manifest.json'}")
    else:
        click.echo(str(ctx.out_dir))


@main.command()
@click.argument("brief", type=click.Path(path_type=Path))
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="Also say whether this output folder is already up to date.")
@click.option("--candidates", type=click.IntRange(1, 64), default=None, help="Override candidates per beat.")
@click.option("--backend", default="procedural", show_default=True, help="Keyframe backend.")
@click.option("--regenerate", is_flag=False, flag_value="all", default=None, help=REGENERATE_HELP)
@click.option("--json", "as_json", is_flag=True)
def plan(brief: Path, out: Path | None, candidates: int | None, backend: str, regenerate: str | None,
         as_json: bool) -> None:
    """What rendering BRIEF would run, and why: each cached step (voice, music, each beat's
    candidates and clip, the mix and each channel's master and deliverable) is current,
    stale (the input that changed, old and new), missing (never made, or gone from the
    store) or gated (a model or voice changed: needs --regenerate); all but current run.
    With each step's cost from earlier records. Starts no Ray or ffmpeg."""
    from studio.pipeline import plan as make_plan

    _print_plan(make_plan(brief, candidates=candidates, backend=backend, regenerate=_regenerate(regenerate),
                          out_dir=out), as_json)


def _engine() -> Any:
    from studio import db
    from studio.settings import get_settings

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = db.make_engine(settings.db_url)
    db.init_db(engine)
    return engine


@main.command()
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def runs(limit: int, as_json: bool) -> None:
    """List recent runs."""
    from sqlmodel import Session, select

    from studio import db

    engine = _engine()
    db.mark_interrupted(engine)  # a killed render's run is not left "running"
    with Session(engine) as s:
        rows = s.exec(
            select(db.Run, db.BriefVersion, db.Project)
            .join(db.BriefVersion, db.Run.brief_version_id == db.BriefVersion.id)  # type: ignore[arg-type]
            .join(db.Project, db.BriefVersion.project_id == db.Project.id)  # type: ignore[arg-type]
            .order_by(db.Run.started_at.desc())  # type: ignore[attr-defined]
            .limit(limit)
        ).all()
        items = [
            {"run": r.id, "status": r.status, "project": p.code, "campaign": bv.campaign,
             "brief_version": bv.version, "started": r.started_at.isoformat(timespec="seconds"),
             "out": r.out_dir}
            for r, bv, p in rows
        ]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("no runs yet: try `studio render examples/briefs/launch.yaml --out out/demo`")
        return
    for it in items:
        click.echo(f"{it['run']}  {it['status']:<11} {it['project']}/{it['campaign']} "
                   f"brief v{it['brief_version']}  {it['started']}  {it['out']}")


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
def show(run_id: str, as_json: bool) -> None:
    """What RUN made, from what, and why."""
    from studio.inspect import describe_run

    with_engine = _engine()
    info = describe_run(with_engine, run_id)
    if as_json:
        click.echo(json.dumps(info, indent=2, default=str))
        return
    r = info["run"]
    click.echo(f"run {r['id']}  {r['status']}  {info['project']}/{info['campaign']} brief v{info['brief_version']}")
    click.echo(f"  out: {r['out_dir']}")
    if r.get("error"):
        click.echo(f"  error: {r['error']}")
    for shot in info["shots"]:
        click.echo(f"  beat {shot['beat_id']} ({shot['duration']:g} s, {shot['frames']} frames @ {shot['rate']}) "
                   f"prompt {shot['prompt_hash'][:12]}")
        for c in shot["candidates"]:
            mark = "*" if c["id"] == shot.get("selected") else " "
            click.echo(f"   {mark} {c['id']} seed {c['seed']:<10} score {c['score']:.3f} "
                       f"{c['backend']}/{c['model_id']} keyframe {c['media_sha256'][:12]}")
        if shot.get("selected_reason"):
            click.echo(f"     why: {shot['selected_reason']}")
    for d in info["deliverables"]:
        extra = f"{d['fps']} fps {d['duration']:.2f} s " if d["kind"] == "video" else ""
        click.echo(f"  deliverable {d['spec']:<24} {d['width']}x{d['height']} {extra}{d['size']} B  {d['path']}")
    for t in info["timelines"]:
        click.echo(f"  timeline {t['kind']:<8} {t['path']}")


@main.command("select")
@click.argument("run_id", metavar="RUN")
@click.argument("beat")
@click.argument("candidate")
@click.option("--note", default="", help="Why: recorded with the pick and in later runs' reasons.")
def select_(run_id: str, beat: str, candidate: str, note: str) -> None:
    """Pick CANDIDATE for RUN's BEAT by hand: the next render of the brief selects it.

    The pick is recorded (who: STUDIO_USER or the OS user; when; the note) in the
    "selected" pointer's history; later renders of the project/campaign select the
    candidate with the same recipe in place of the top score.
    """
    from sqlmodel import Session

    from studio import db

    with Session(_engine()) as s:
        run, shot, cand, ptr = db.pick_candidate(s, run_id, beat, candidate, db.who(), note)
        s.commit()
        click.echo(f"run {run.id} beat {shot.beat_id}: {cand.id} (index {cand.index}, keyframe "
                   f"{cand.media_sha256[:12]}) {db.pick_words(ptr)}")
        click.echo("  the next render of this brief selects it (same recipe); `studio show` lists the candidates")


@main.command()
@click.argument("kind", type=click.Choice(["brief", "spec", "style", "model", "voice", "track", "manifest",
                                           "policy"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of a document kind."""
    from studio.brief import brief_json_schema
    from studio.specs import ChannelSpec, StylePack

    if kind == "brief":
        doc = brief_json_schema()
    elif kind == "spec":
        doc = ChannelSpec.model_json_schema(by_alias=True)
    elif kind == "style":
        doc = StylePack.model_json_schema(by_alias=True)
    elif kind == "model":
        from studio.models import ModelEntry

        doc = ModelEntry.model_json_schema(by_alias=True)
    elif kind == "voice":
        from audio.voices import VoiceEntry

        doc = VoiceEntry.model_json_schema(by_alias=True)
    elif kind == "track":
        from audio.library import Track

        doc = Track.model_json_schema(by_alias=True)
    elif kind == "policy":
        from studio.policy import Policy

        doc = Policy.model_json_schema(by_alias=True)
    else:
        from studio.inspect import manifest_json_schema

        doc = manifest_json_schema()
    click.echo(json.dumps(doc, indent=2))


@main.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--spec", "spec_name", required=True, help="channel spec to check against (`studio specs`)")
@click.option("--captions", type=click.Path(path_type=Path), help="SRT or WebVTT file to check")
@click.option("--style", help="style pack whose palette the picture is compared with")
@click.option("--duration", "expected", type=float, help="the edit's length in seconds (checked to the frame)")
@click.option("--json", "as_json", is_flag=True, help="print the QcReport.1 JSON")
@click.option("--json-out", type=click.Path(path_type=Path), help="write the JSON report here")
@click.option("--html", "html_out", type=click.Path(path_type=Path), help="write the HTML report here")
def qc(file: Path, spec_name: str, captions: Path | None, style: str | None, expected: float | None,
       as_json: bool, json_out: Path | None, html_out: Path | None) -> None:
    """Technical QC of a deliverable FILE against a channel spec. Exit status 0 when no
    blocking check fails (warnings allowed), 1 when one does."""
    from studio.qc import run_qc
    from studio.settings import get_settings
    from studio.specs import Catalog

    s = get_settings()
    cat = Catalog(s.specs_dir, s.styles_dir)
    spec = cat.spec(spec_name, field="--spec")
    palette = cat.style(style, field="--style").palette if style else None
    report = run_qc(file, spec, captions=captions, palette=palette, expected_duration=expected)
    if json_out:
        report.write_json(json_out)
    if html_out:
        report.write_html(html_out)
    if as_json:
        click.echo(report.to_json())
    else:
        click.echo(f"{file}: {report.verdict} against {spec.name}")
        for c in report.checks:
            click.echo(f"  {c.status:<7} {c.id:<12} {c.finding}")
            for ev in c.events[:5]:
                click.echo(f"  {'':<20} {ev.start_tc} – {ev.end_tc}  {ev.detail}")
            if len(c.events) > 5:
                click.echo(f"  {'':<20} … {len(c.events) - 5} more")
            if c.status in ("fail", "warn") and c.fix:
                click.echo(f"  {'':<20} fix: {c.fix}")
    if report.blocked:
        sys.exit(1)


@main.command()
def specs() -> None:
    """List channel specs."""
    from studio.settings import get_settings
    from studio.specs import Catalog

    s = get_settings()
    for spec in Catalog(s.specs_dir, s.styles_dir).specs.values():
        extra = f"{spec.fps} fps" if spec.kind == "video" else f"≤ {spec.max_file_size} B"
        click.echo(f"{spec.name:<26} {spec.kind:<5} {spec.width}x{spec.height} {extra:<14} {spec.title}")


@main.command()
def styles() -> None:
    """List style packs."""
    from studio.settings import get_settings
    from studio.specs import Catalog

    s = get_settings()
    for st in Catalog(s.specs_dir, s.styles_dir).styles.values():
        click.echo(f"{st.name:<16} {' '.join(st.palette)}  {st.title}")


@main.command()
def layouts() -> None:
    """List copy layouts (a brief's `layouts` and `end_card.layout` name them)."""
    from studio.layout import TEXT_ROLES
    from studio.layout import layouts as known

    for lay in known().values():
        roles = [r for r in ("logo", *TEXT_ROLES) if getattr(lay.regions, r) is not None]
        click.echo(f"{lay.name:<22} {lay.title}")
        click.echo(f"{'':<22} regions: {', '.join(roles)}" + (f"; leaves out: {', '.join(lay.omit)}" if lay.omit else ""))


@main.command()
def voices() -> None:
    """List narration voices, their backend and the usage classes they are licensed for."""
    from audio.voices import VoiceRegistry
    from studio.settings import get_settings

    reg = VoiceRegistry(get_settings().voices_dir)
    for vid in reg.ids():
        e = reg.entries[vid]
        click.echo(f"{e.id:<16} {e.backend:<18} {e.language:<6} {e.kind:<7} "
                   f"{'/'.join(e.usage_classes):<27} {e.title}")
        if e.usage_reason.strip():
            click.echo(f"{'':<16} why: {' '.join(e.usage_reason.split())}")


@main.command()
def models() -> None:
    """List model registry entries: kind, backend, the usage classes each is licensed for,
    and whether its weights are pinned."""
    from studio.models import ModelRegistry
    from studio.settings import get_settings

    reg = ModelRegistry(get_settings().models_dir)
    for mid in sorted(reg.entries):
        e = reg.entries[mid]
        pinned = "pinned" if e.weights_sha256 else "unpinned"
        click.echo(f"{e.id:<20} {e.kind:<15} {e.backend:<16} {'/'.join(e.usage_classes):<27} "
                   f"{pinned:<8} {e.licence}")


@main.command()
def plugins() -> None:
    """List keyframe, voice and music backends and whether each loads."""
    from audio.registry import available_backends
    from shots.backends import plugin_status

    for name, target, status in plugin_status():
        click.echo(f"{name:<14} {status:<4} {target}" if status == "ok" else f"{name:<14} FAILED {target}: {status}")
    for name, line in available_backends().items():
        click.echo(f"{name:<22} {line}")


@main.command()
@click.argument("run_id")
@click.argument("edited", type=click.Path(path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@click.option("--quiet", is_flag=True)
@click.option("--log-json", is_flag=True)
def conform(run_id: str, edited: Path, out: Path, quiet: bool, log_json: bool) -> None:
    """Re-render RUN's video deliverables from an editor's EDITED timeline (OTIO, FCP7 XML, FCPXML)."""
    from studio.conform import conform_edit
    from studio.progress import make_reporter
    from studio.settings import get_settings

    reporter = make_reporter(quiet, log_json)
    try:
        ctx, changes = conform_edit(run_id, edited, out, settings=get_settings(), reporter=reporter)
    finally:
        reporter.close()
    if not quiet and not log_json:
        click.echo(f"run {ctx.run_id}: the edit {' '.join(changes['order_after'])}"
                   + (f" (dropped {' '.join(changes['dropped'])})" if changes["dropped"] else ""))
        for d in ctx.deliverables:
            click.echo(f"  {d['spec']:<26} {ctx.out_dir / d['path']}")


@main.command()
@click.argument("candidate_id")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="Write the image here.")
@click.option("--alone", is_flag=True, help="Regenerate it in a batch of its own, not its recorded batch.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch threads to use instead of the recorded count.")
def regenerate(candidate_id: str, out: Path | None, alone: bool, threads: int | None) -> None:
    """Re-create CANDIDATE under its recorded conditions and compare it with the record.

    Prints bit-exact, within-threshold (PSNR against the stated threshold, where the
    device, libraries or CPU differ from the record) or DIFFERENT; exits 1 on DIFFERENT.
    """
    from shots.regenerate import regenerate as run
    from studio.settings import get_settings
    from studio.store import Store

    res = run(_engine(), Store(get_settings().store_root), candidate_id, out, alone=alone, threads=threads)
    rec, now = res["recorded"], res["now"]

    def cpu(c: dict[str, Any]) -> str:
        if not c:
            return "unknown"
        flags = ", ".join(f"{f} {'yes' if c.get(f) else 'no' if c.get(f) is False else '?'}"
                          for f in ("avx512f", "avx2"))
        return f"{c.get('model') or '?'} ({flags}; torch {c.get('torch_capability') or '-'})"

    def run_line(c: dict[str, Any]) -> str:
        return (f"{c['call']}({c['batch_seeds']}) #{c['batch_index']}, torch threads "
                f"{c['torch_threads'] if c['torch_threads'] is not None else '-'}, device {c['device']}, "
                f"dtype {c['dtype']}")

    lines = [
        f"{res['candidate']}: {res['verdict_text']}",
        f"  recipe    {res['backend']} seed {res['seed']} at {res['size'][0]}x{res['size'][1]}",
        f"  sha256    recorded {res['recorded_sha256'][:16]}, now {res['regenerated_sha256'][:16]}",
        f"  recorded  {run_line(rec)}; cpu {cpu(rec['cpu'])}",
        f"  now       {run_line(now)}; cpu {cpu(now['cpu'])}",
    ]
    lines += [f"  differs   {d}" for d in res["differences"]]
    lines += [f"  note      {n}" for n in res["notes"]]
    if res["out"]:
        lines.append(f"  written   {res['out']}")
    click.echo("\n".join(lines))
    if res["verdict"] == "DIFFERENT":
        sys.exit(1)


@main.command()
def stages() -> None:
    """The pipeline's stages, in order."""
    from studio.pipeline import STAGES

    for i, st in enumerate(STAGES, 1):
        click.echo(f"{i}. {st.name:<10} {st.code_version:<12} {', '.join(st.inputs)} -> {', '.join(st.outputs)}"
                   f"  {st.description}")


@main.command()
@click.argument("thing")
@click.option("--json", "as_json", is_flag=True)
def where(thing: str, as_json: bool) -> None:
    """Every deliverable containing THING: a candidate id, a keyframe or media sha256 (or
    its first 6+ digits), a model, voice, music track or style pack name, a LUT file name
    or sha256, a licence id (licence:ID, or the bare id), or kind:id (e.g. seed:42).
    Blocked deliverables (a revoked or expired licence) say so."""
    from studio import lineage

    engine = _engine()
    lineage.record_missing(engine)  # runs recorded before lineage was
    info = lineage.where(engine, thing)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    names = ", ".join(f"{n['kind']} {n['id']}" for n in info["nodes"])
    if not info["deliverables"]:
        click.echo(f"{names}: in no deliverable")
        return
    click.echo(f"{names}: in {len(info['deliverables'])} deliverable(s)")
    for d in info["deliverables"]:
        state = ("  BLOCKED: " + "; ".join(b["detail"] or b["reason"] for b in d["blocks"])) if d["blocked"] else ""
        click.echo(f"  {d['id']:<22} {d['spec']:<26} run {d['run_id']}  {d['path']}{state}")


@main.command()
@click.argument("deliverable")
@click.option("--json", "as_json", is_flag=True)
def lineage(deliverable: str, as_json: bool) -> None:
    """What DELIVERABLE (its id, its file's sha256 or its path) was made from, down to
    seeds, prompt records, weights, voice and music."""
    from studio import lineage as lin

    engine = _engine()
    lin.record_missing(engine)
    info = lin.lineage(engine, deliverable)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    if info["matched"] > 1:
        click.echo(f"({info['matched']} deliverables have this file; the newest is shown)")
    if info["conform_of"]:
        click.echo(f"(run {info['deliverable']['run_id']} is a conform of run {info['conform_of']})")
    for line in lin.format_tree(info["tree"]):
        click.echo(line)


class _RightsGroup(StudioGroup):
    """`studio rights DELIVERABLE` is `studio rights show DELIVERABLE`: anything that is not
    a subcommand is a deliverable."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_RightsGroup)
def rights() -> None:
    """The rights ledger: `studio rights DELIVERABLE` lists each part of a deliverable with
    its licence (licensor, usage classes, territories, media, term, consent) and its blocks;
    `revoke` and `check` block what a revoked or expired licence reaches."""


def _term(rec: dict[str, Any]) -> str:
    if not rec.get("starts") and not rec.get("expires"):
        return "no end"
    return f"{rec.get('starts') or '...'} to {rec.get('expires') or '...'}"


def _consent(rec: dict[str, Any]) -> str:
    if not rec.get("real_person"):
        return "-"
    c = rec.get("consent")
    return f"{rec['real_person']}: " + (f"consent {c['granted']} ({c['document']})" if c else "NO CONSENT")


@rights.command("show")
@click.argument("deliverable")
@click.option("--json", "as_json", is_flag=True)
def rights_show(deliverable: str, as_json: bool) -> None:
    """DELIVERABLE's parts (by its id, its file's sha256 or its path) with their rights."""
    from studio import lineage as lin
    from studio import rights as rts
    from studio.settings import get_settings

    engine = _engine()
    lin.record_missing(engine)
    info = rts.rights_of(engine, deliverable, get_settings())
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    d = info["deliverable"]
    if info["matched"] > 1:
        click.echo(f"({info['matched']} deliverables have this file; the newest is shown)")
    click.echo(f"{d['id']} {d['spec']} ({d['kind']}) run {d['run_id']}  {d['path']}")
    # The same licence on many parts (a voice's lines, a model's keyframes) is one row.
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in info["parts"]:
        rows.setdefault((p["kind"], p["rights"]["licence_id"]), []).append(p)
    table = [("COMPONENT", "LICENCE ID", "LICENCE", "LICENSOR", "USAGE", "TERRITORIES", "MEDIA", "TERM",
              "CONSENT")]
    for (kind, _lid), parts in rows.items():
        rec, ledger = parts[0]["rights"], parts[0]["ledger"]
        name = parts[0]["name"] if len(parts) == 1 else f"{kind} x{len(parts)}"
        if ledger["revoked"]:
            name += " [REVOKED]"
        elif ledger["expired"]:
            name += " [EXPIRED]"
        licence = rec["licence"] if len(rec["licence"]) <= 40 else rec["licence"][:39] + "…"
        table.append((name, rec["licence_id"], licence, rec["licensor"], ",".join(rec["usage_classes"]),
                      ",".join(rec["territories"]), ",".join(rec["media"]), _term(rec), _consent(rec)))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    if not info["blocks"]:
        click.echo("blocks: none")
    for b in info["blocks"]:
        click.echo(f"BLOCKED ({b['reason']}, {b['licence_id']}): {b['detail']}")


@rights.command("revoke")
@click.argument("licence_id")
@click.option("--reason", required=True, help="why (e.g. the licensor's notice)")
@click.option("--by", "by", required=True, help="who revokes it")
def rights_revoke(licence_id: str, reason: str, by: str) -> None:
    """Revoke LICENCE_ID in the ledger and block every deliverable it reaches."""
    from studio import lineage as lin
    from studio import rights as rts

    engine = _engine()
    lin.record_missing(engine)
    blocked = rts.revoke(engine, licence_id, reason=reason, by=by)
    click.echo(f"licence {licence_id} revoked: {len(blocked)} deliverable(s) blocked")
    for did in blocked:
        click.echo(f"  {did}")


@rights.command("check")
@click.option("--on", "on", default=None, help="the day to check against, YYYY-MM-DD (default: today)")
def rights_check(on: str | None) -> None:
    """Block what every licence (or consent) expired by --on reaches."""
    import datetime as dt

    from studio import lineage as lin
    from studio import rights as rts

    try:
        day = dt.date.fromisoformat(on) if on else dt.date.today()
    except ValueError:
        raise StudioError(f"{on!r} is not a date", fix="give --on as YYYY-MM-DD (e.g. 2027-01-31)",
                          field="--on") from None
    engine = _engine()
    lin.record_missing(engine)
    made = rts.check_expiry(engine, day)
    click.echo(f"licences expired by {day.isoformat()}: {len(made)} deliverable block(s) made")
    for b in made:
        click.echo(f"  {b['deliverable_id']}  {b['detail']}")


@main.group()
def keys() -> None:
    """Signing identities for the C2PA manifests deliverables carry."""


@keys.command("dev")
@click.option("--force", is_flag=True, help="replace an existing development identity")
def keys_dev(force: bool) -> None:
    """Make a development signing identity under STUDIO_HOME/signing (a root CA, an
    intermediate and an ES256 leaf), used when STUDIO_SIGNING_CERT is not set. It signs for
    this machine only: production sets STUDIO_SIGNING_CERT/KEY to the organisation's."""
    from studio.devcert import dev_dir, make_dev_identity
    from studio.settings import get_settings

    s = get_settings()
    folder = dev_dir(s.home)
    if (folder / "chain.pem").is_file() and not force:
        click.echo(f"{folder}: a development identity is there already (--force replaces it)")
        return
    files = make_dev_identity(folder)
    click.echo(f"development signing identity: {files.cert} (key {files.key}, root {files.trust})")


@main.group()
def token() -> None:
    """API tokens for the server: one role on one project each (viewer, editor, approver,
    admin), made here on the server's machine, sent as Authorization: Bearer <token>."""


@token.command("create")
@click.option("--project", required=True, help="The project code the token is for (as briefs name it).")
@click.option("--role", required=True, type=click.Choice(["viewer", "editor", "approver", "admin"]),
              help="viewer: read; editor: + submit, cancel; approver: + sign off; admin: everything.")
@click.option("--name", default="", help="A label, to tell tokens apart in `studio token list`.")
def token_create(project: str, role: str, name: str) -> None:
    """Make a token and print its secret: the only time it is shown (only its hash is kept)."""
    from studio import auth

    row, secret = auth.create(_engine(), project=project, role=role, name=name)
    click.echo(secret)
    click.echo(f"token {row.id}: {role} on project {project}. This is the only time it is shown: only its "
               "hash is stored. Send it as Authorization: Bearer <token>.", err=True)


@token.command("list")
@click.option("--project", default=None, help="Only this project's tokens.")
@click.option("--json", "as_json", is_flag=True)
def token_list(project: str | None, as_json: bool) -> None:
    """The tokens (never their secrets: only the first characters of each)."""
    from studio import auth

    items = [auth.describe(t) for t in auth.list_tokens(_engine(), project=project)]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("no tokens yet: make one with `studio token create --project P --role viewer`")
        return
    for it in items:
        state = f"revoked {it['revoked_at']}" if it["revoked_at"] else f"last used {it['last_used_at'] or 'never'}"
        click.echo(f"{it['id']}  {it['prefix']}…  {it['role']:<8} {it['project']:<16} {it['name'] or '-':<16} "
                   f"made {it['created_at']} by {it['created_by']}  {state}")


@token.command("revoke")
@click.argument("token_id", metavar="ID")
def token_revoke(token_id: str) -> None:
    """Revoke token ID (as `studio token list` shows it): it is refused from now on."""
    from studio import auth

    row = auth.revoke(_engine(), token_id)
    click.echo(f"token {row.id} ({row.role} on project {row.project}) revoked at "
               f"{row.revoked_at.isoformat(timespec='seconds') if row.revoked_at else '?'}")


def _start_workers(n: int, stop: threading.Event) -> list[threading.Thread]:
    """``n`` threads running ``studio.worker.run_worker`` until ``stop`` is set; none, with a
    line saying so, where this Studio has no worker."""
    if n < 1:
        return []
    try:
        from studio.worker import default_worker_id, run_worker
    except ImportError:
        click.echo("studio serve: no job worker in this Studio (studio.worker.run_worker); jobs stay queued",
                   err=True)
        return []
    from studio.settings import get_settings

    settings = get_settings()
    # The API makes STUDIO_HOME on its first request; a worker opens the database before
    # that (its migration lock file goes beside a SQLite database), so the folder must exist.
    settings.home.mkdir(parents=True, exist_ok=True)
    threads = [threading.Thread(target=run_worker, args=(settings,),
                                kwargs={"stop": stop, "worker_id": f"{default_worker_id()}/{i + 1}",
                                        "lease_seconds": settings.worker_lease_seconds,
                                        "poll_seconds": settings.worker_poll_seconds},
                                name=f"studio-worker-{i + 1}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    return threads


def _start_dispatcher(stop: threading.Event) -> threading.Thread:
    """The webhook dispatcher (studio.webhooks.run_dispatcher) in a thread: it POSTs the
    outbox's messages until ``stop`` is set; what it has not sent waits for the next start."""
    from studio import webhooks
    from studio.settings import get_settings

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)  # as for the workers: the database's folder
    thread = threading.Thread(target=webhooks.run_dispatcher, args=(settings, stop), name="studio-webhooks",
                              daemon=True)
    thread.start()
    return thread


def _start_expiry_watch(stop: threading.Event) -> threading.Thread:
    """The rights ledger's expiry watch (studio.rights.watch_expiry) in a thread: licences
    that ran out block the deliverables they reach, hourly, until ``stop`` is set."""
    from studio import db
    from studio.rights import watch_expiry
    from studio.settings import get_settings

    engine = db.make_engine(get_settings().db_url)
    db.init_db(engine)

    def log(line: str) -> None:
        click.echo(f"studio serve: {line}", err=True)

    thread = threading.Thread(target=watch_expiry, args=(engine, stop), kwargs={"log": log},
                              name="studio-rights-expiry", daemon=True)
    thread.start()
    return thread


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (the default takes no connections from other machines).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(0, 64),
              help="Worker threads in this process that run queued jobs (0: queue only).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
def serve(host: str, port: int, workers: int, log_level: str) -> None:
    """The HTTP API (under /v1, OpenAPI at /openapi.json) on HOST:PORT, with WORKERS job
    workers. SIGTERM or Ctrl-C stops it: requests in flight finish first."""
    import uvicorn

    from studio.api import stream

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            stream.STOPPING.set()  # event streams end, so the graceful shutdown does not wait on them
            super().handle_exit(sig, frame)

    config = uvicorn.Config("studio.api.app:create_app", factory=True, host=host, port=port,
                            log_level=log_level)
    server = Server(config)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"studio serve: the API at http://{shown}:{port}/v1 (OpenAPI: /openapi.json), the review page at "
               f"http://{shown}:{port}/review (sign in with a token: `studio token create`)", err=True)
    stop = threading.Event()
    threads = _start_workers(workers, stop)
    dispatcher = _start_dispatcher(stop)
    expiry = _start_expiry_watch(stop)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then raises the signal again with
    # the handler it found: with these no-ops that ends server.run() instead of the
    # process, so the workers below are stopped (their jobs given back) before we exit.
    before = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        stop.set()
        for t in threads:  # a worker stops its render (up to its grace period) and gives the job back
            t.join(timeout=90)
        # A POST in flight ends within its 10 s timeout; unsent messages stay in the outbox.
        dispatcher.join(timeout=15)
        expiry.join(timeout=15)
        for sig, handler in before.items():
            signal.signal(sig, handler)


# -- the CLI as a client of a server (studio serve) -------------------------------------

CANCELED_EXIT = 143  # a canceled job: the code a render stopped by SIGTERM exits with (128 + 15)
server_option = click.option("--server", envvar="STUDIO_SERVER", required=True, metavar="URL",
                             help="The Studio server, e.g. http://127.0.0.1:8765 (or STUDIO_SERVER).")
token_option = click.option("--token", envvar="STUDIO_TOKEN", default=None, metavar="TOKEN",
                            help="An API token, sent as Authorization: Bearer (or STUDIO_TOKEN).")


def _job_line(job: dict[str, Any]) -> str:
    extra = f"  {job['error']}" if job.get("error") else ""
    return (f"{job['id']}  {job['state']:<10} p{job['priority']:<3} {job['project']}/{job['campaign']}  "
            f"{job['created_at']}{extra}")


class _Follower:
    """The job's events as the local render shows its progress (studio.progress): bars on
    a terminal, else a line per stage start and end and per tenth of a stage; state
    changes and warnings as lines of their own."""

    def __init__(self, job_id: str) -> None:
        from studio.progress import make_reporter

        self.job_id = job_id
        self.reporter = make_reporter(False, False)

    def say(self, text: str) -> None:
        click.echo(f"studio: job {self.job_id} {text}", err=True)

    def __call__(self, event: Any) -> None:
        data = dict(event.data)
        data.pop("attempt", None)
        stage = str(data.pop("stage", ""))
        if event.type == "stage_start":
            self.reporter.stage_start(stage, data.get("total"))
        elif event.type == "progress":
            fields = {k: v for k, v in data.items() if k in ("shot", "spec", "candidate")}
            self.reporter.advance(stage, float(data.get("amount", 1) or 0), **fields)
        elif event.type == "stage_done":
            self.reporter.stage_done(stage, **data)
        elif event.type == "warning":
            self.reporter.warn(str(data.get("message", "")))
        elif event.type == "running":
            self.say(f"running (attempt {event.data.get('attempt')}, worker {data.get('worker')})")
        elif event.type == "queued" and data.get("reason") == "retry":
            self.say(f"failed attempt {data.get('failures')} of {data.get('max_attempts')}: "
                     f"{data.get('error')}; queued again")
        elif event.type == "queued" and data.get("reason") in ("retried", "resumed"):
            self.say(f"{data['reason']}" + (f" by {data['by']}" if data.get("by") else "") + "; queued again")
        elif event.type == "queued":
            self.say("queued" + (" again (its worker stopped)" if data.get("reason") == "interrupted" else ""))
        elif event.type == "interrupted":
            self.say(f"interrupted: {data.get('reason')}")
        elif event.type in ("canceling", "succeeded", "failed", "canceled", "suspending", "suspended"):
            self.say(event.type + (f" by {data['by']}" if data.get("by") else ""))
        elif event.type == "priority":
            self.say(f"priority {data.get('from')} -> {data.get('to')}")


@main.command()
@click.argument("brief", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@server_option
@token_option
@click.option("--priority", type=click.IntRange(0, 100), default=None, help="0-100 (default 50).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label; repeat for more.")
@click.option("--idempotency-key", default=None, help="The same key and brief give back the same job.")
@click.option("--dry-run", is_flag=True, help="Print the server's plan; queue nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the job (or plan) as JSON on stdout.")
@click.option("--no-wait", is_flag=True, help="Print the job and return once it is queued.")
def submit(brief: Path, server: str, token: str | None, priority: int | None, labels: tuple[str, ...],
           idempotency_key: str | None, dry_run: bool, as_json: bool, no_wait: bool) -> None:
    """Submit BRIEF to a Studio server and follow the job's progress until it finishes.

    Exit code: 0 succeeded; 1 failed (its error printed); 3 waiting on a person at a human
    gate (what to do printed: `studio pick`, `studio approve`); 4 blocked by the release gate
    (each violation and QC failure printed; `studio override`); 143 canceled; 2 refused
    (each problem printed) or the server unreachable; 130 when Ctrl-C stops the following
    (the job goes on on the server)."""
    from studio.client import BLOCKED_EXIT, GATE_EXIT, GATES, Client

    with Client(server, token) as client:
        status, body = client.submit(brief.read_bytes(), source=str(brief), priority=priority,
                                     labels=list(labels), idempotency_key=idempotency_key, dry_run=dry_run)
        if dry_run:
            if as_json:
                click.echo(json.dumps(body, indent=2))
            else:
                the_plan = body.get("plan") or {}
                click.echo(f"plan for {brief} on {client.base} (nothing queued)")
                for step in the_plan.get("steps", []):
                    click.echo(f"  {step.get('status', ''):<8} {step.get('stage', ''):<10} {step.get('item', '')}")
                est = the_plan.get("estimate") or {}
                if est.get("wall_seconds") is not None:
                    click.echo(f"about {est['wall_seconds']:.0f} s wall" +
                               (f", {est['gpu_seconds']:.1f} GPU-s" if est.get("gpu_seconds") else ""))
            return
        job_id = body["id"]
        if no_wait:
            click.echo(json.dumps(body, indent=2) if as_json else job_id)
            return
        click.echo(f"studio: job {job_id} {'submitted' if status == 201 else 'was submitted before (same key)'}"
                   f" to {client.base}", err=True)
        follower = _Follower(job_id)
        try:
            job = client.follow(job_id, follower, stop_at=GATES,
                                on_reconnect=lambda why: follower.say(f"stream dropped ({why}); reconnecting"))
        except KeyboardInterrupt:
            click.echo(f"studio: stopped following job {job_id}; it goes on on the server "
                       f"(`studio cancel {job_id}` stops it)", err=True)
            sys.exit(130)
        finally:
            follower.reporter.close()
    if as_json:
        click.echo(json.dumps(job, indent=2))
    elif job["state"] == "succeeded":
        click.echo(job.get("out_dir") or job_id)
    if job["state"] == "failed":
        click.echo(f"studio: error: job {job_id} failed: {job.get('error') or 'no error was recorded'}", err=True)
        sys.exit(1)
    if job["state"] == "canceled":
        click.echo(f"studio: job {job_id} was canceled", err=True)
        sys.exit(CANCELED_EXIT)
    if job["state"] in GATES:
        waiting = ", ".join((job.get("gate") or {}).get("waiting_on") or [])
        todo = {"awaiting_selection": f"pick a candidate for beat(s) {waiting}: `studio candidates {job_id}`, then "
                                      f"`studio pick {job_id} BEAT CANDIDATE`",
                "awaiting_approval": f"sign-off(s) {waiting} to give: `studio approve {job_id} --role ROLE`",
                "rejected": f"rejected: change a pick (`studio pick`) or ask for more (`studio more {job_id} BEAT NOTE`)",
                "blocked": f"the release gate holds {waiting}: an approver signs off each violation (`studio override "
                           f"{job_id} --rule RULE --component KIND:ID --reason TEXT`); a QC failure needs the media or "
                           f"the spec fixed, then `studio retry {job_id}`"}
        click.echo(f"studio: job {job_id} waits on a person ({job['state']}): {todo[job['state']]}", err=True)
        if job["state"] == "blocked":
            gate = job.get("gate") or {}
            for v in gate.get("violations") or []:
                done = f" [overridden by {v['overridden_by'].get('approver')}]" if v.get("overridden_by") else ""
                click.echo(f"studio: {v.get('spec')}: {v.get('rule')} {v.get('component')}: {v.get('reason')} — "
                           f"{v.get('fix')}{done}", err=True)
            for q in gate.get("qc") or []:
                click.echo(f"studio: {q.get('spec')}: QC check {q.get('check')} failed: {q.get('finding')} — "
                           f"{q.get('fix') or 'see the QC report'} ({q.get('html')})", err=True)
            sys.exit(BLOCKED_EXIT)
        sys.exit(GATE_EXIT)


@main.command("jobs")
@server_option
@token_option
@click.option("--state", "states", multiple=True, help="Only jobs in this state; repeat for more.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def jobs_(server: str, token: str | None, states: tuple[str, ...], limit: int, as_json: bool) -> None:
    """The server's jobs, newest first."""
    from studio.client import Client

    with Client(server, token) as client:
        items = client.jobs(list(states), limit=limit)
    if as_json:
        click.echo(json.dumps(items, indent=2))
    elif not items:
        click.echo("no jobs" + (f" in state {', '.join(states)}" if states else ""))
    for job in [] if as_json else items:
        click.echo(_job_line(job))


@main.command("job")
@click.argument("job_id", metavar="ID")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def job_(job_id: str, server: str, token: str | None, as_json: bool) -> None:
    """One job on the server: its state, attempts so far, output and error."""
    from studio.client import Client

    with Client(server, token) as client:
        job = client.job(job_id)
    if as_json:
        click.echo(json.dumps(job, indent=2))
        return
    for key in ("id", "state", "project", "campaign", "priority", "labels", "failures", "max_attempts",
                "run_id", "out_dir", "error", "created_at", "updated_at"):
        value = job.get(key)
        if value not in (None, {}, ""):
            click.echo(f"{key + ':':<14}{value}")


@main.command("cancel")
@click.argument("job_id", metavar="ID")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def cancel_(job_id: str, server: str, token: str | None, as_json: bool) -> None:
    """Cancel job ID on the server (that job only): canceled at once when queued, canceling
    until its worker has stopped when running; a finished job is left as it is."""
    from studio.client import Client

    with Client(server, token) as client:
        job = client.cancel(job_id)
    if as_json:
        click.echo(json.dumps(job, indent=2))
    elif job["state"] == "canceling":
        click.echo(f"job {job_id}: canceling (its worker is stopping it)")
    else:
        click.echo(f"job {job_id}: {job['state']}")


# -- human gates: what a job waits on, picks, notes, more candidates, sign-offs ------------


def _decided(out: dict[str, Any], as_json: bool, words: str) -> None:
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    job = out["job"]
    moved = f"; the job is now {out['moved']}" if out.get("moved") else f"; the job stays {job['state']}"
    waiting = (job.get("gate") or {}).get("waiting_on") if not out.get("moved") else None
    click.echo(f"job {job['id']}: {words} (decision {out['decision']['id']}, on "
               f"{out['decision']['content_sha256'][:12]}){moved}" + (f", waiting on {', '.join(waiting)}" if waiting else ""))


@main.command("candidates")
@click.argument("job_id", metavar="ID")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def candidates_(job_id: str, server: str, token: str | None, as_json: bool) -> None:
    """What job ID waits on at a human gate, and each beat's candidates to pick from."""
    from studio.client import Client

    with Client(server, token) as client:
        sheet = client.candidates(job_id)
    if as_json:
        click.echo(json.dumps(sheet, indent=2))
        return
    click.echo(f"job {job_id}: gate {sheet.get('gate') or 'none'}"
               + (f", waiting on {', '.join(sheet['waiting_on'])}" if sheet.get("waiting_on") else "")
               + (f", release {sheet['content_sha256']}" if sheet.get("content_sha256") else ""))
    for b in sheet["beats"]:
        chosen = b.get("picked") or b.get("selected")
        click.echo(f"  beat {b['beat']}")
        for c in b["candidates"]:
            mark = "*" if c["id"] == chosen else " "
            score = f"score {c['score']:.3f}" if c.get("score") is not None else ""
            click.echo(f"   {mark} {c['index']:>2} {c['id']} {score} keyframe {str(c.get('sha256'))[:12]}")


def _candidate_id(client: Any, job_id: str, beat: str, candidate: str) -> str:
    """CANDIDATE as an id, or as its index in the beat (what `studio candidates` shows)."""
    if not candidate.isdigit():
        return candidate
    for b in client.candidates(job_id)["beats"]:
        if b["beat"] == beat:
            for c in b["candidates"]:
                if c["index"] == int(candidate):
                    return str(c["id"])
    raise StudioError(f"beat {beat} of job {job_id} has no candidate {candidate}", field="CANDIDATE",
                      fix=f"`studio candidates {job_id}` lists them")


@main.command("pick")
@click.argument("job_id", metavar="ID")
@click.argument("beat")
@click.argument("candidate")
@click.option("--note", default="", help="Why: kept with the decision.")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def pick_(job_id: str, beat: str, candidate: str, note: str, server: str, token: str | None, as_json: bool) -> None:
    """Pick CANDIDATE (its id, or its index in `studio candidates ID`) for BEAT of job ID.
    The job goes on once every beat is picked; after delivery a new pick renders again and
    needs its sign-offs again."""
    from studio.client import Client

    with Client(server, token) as client:
        cid = _candidate_id(client, job_id, beat, candidate)
        out = client.decide(job_id, "picks", {"beat": beat, "candidate": cid, "note": note})
    _decided(out, as_json, f"beat {beat} picked {cid}")


@main.command("annotate")
@click.argument("job_id", metavar="ID")
@click.argument("candidate")
@click.option("--code", "codes", multiple=True, help="A reason code, repeated: composition_solid, expression_off, "
              "product_unclear, off_palette, artefact, good_for_alt.")
@click.option("--note", default="")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def annotate_(job_id: str, candidate: str, codes: tuple[str, ...], note: str, server: str, token: str | None,
              as_json: bool) -> None:
    """A note on CANDIDATE of job ID, with reason codes; changes nothing else."""
    from studio.client import Client

    with Client(server, token) as client:
        out = client.decide(job_id, "annotations", {"candidate": candidate, "codes": list(codes), "note": note})
    _decided(out, as_json, f"noted {candidate}")


@main.command("more")
@click.argument("job_id", metavar="ID")
@click.argument("beat")
@click.argument("note")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def more_(job_id: str, beat: str, note: str, server: str, token: str | None, as_json: bool) -> None:
    """More candidates for BEAT of job ID, with new seeds, their prompt steered by NOTE;
    they join the beat's sheet."""
    from studio.client import Client

    with Client(server, token) as client:
        out = client.decide(job_id, "more", {"beat": beat, "note": note})
    _decided(out, as_json, f"more candidates for beat {beat}")


@main.command("approve")
@click.argument("job_id", metavar="ID")
@click.option("--role", required=True, help="The sign-off you give, one of the brief's approvals (e.g. brand).")
@click.option("--reject", is_flag=True, help="Reject the release instead.")
@click.option("--content", "content_sha256", default=None,
              help="The release's content_sha256 you reviewed (default: the one the job waits on now).")
@click.option("--note", default="")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def approve_(job_id: str, role: str, reject: bool, content_sha256: str | None, note: str, server: str,
             token: str | None, as_json: bool) -> None:
    """Approve (or --reject) the release job ID waits on, as ROLE. The decision names the
    release's content hash: if the content changed since you looked, it is refused."""
    from studio.client import Client

    with Client(server, token) as client:
        if content_sha256 is None:
            content_sha256 = (client.job(job_id).get("gate") or {}).get("content_sha256")
            if not content_sha256:
                raise StudioError(f"job {job_id} waits on no release", field="--content",
                                  fix=f"`studio job {job_id}` shows its state; sign off once it is awaiting_approval")
        out = client.decide(job_id, "approvals", {"role": role, "decision": "reject" if reject else "approve",
                                                  "content_sha256": content_sha256, "note": note})
    _decided(out, as_json, f"{'rejected' if reject else 'approved'} as {role}")


@main.command("override")
@click.argument("job_id", metavar="ID")
@click.option("--rule", required=True, help="The violation's rule, as the job's release gate lists it.")
@click.option("--component", required=True, help="The violation's component, kind:id (e.g. model:flux-dev).")
@click.option("--reason", required=True, help="Why the rule may be broken here: kept with the sign-off.")
@click.option("--expires", default=None, metavar="YYYY-MM-DD", help="The last day it counts (default: no end).")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def override_(job_id: str, rule: str, component: str, reason: str, expires: str | None, server: str,
              token: str | None, as_json: bool) -> None:
    """Sign off one blocking policy violation of job ID, which its release gate blocked
    (approver token): recorded as a legal override for the job's project and campaign, with
    you as the approver. The job goes on once each violation is signed off; a QC failure is
    never overridden (fix the media or the spec)."""
    from studio.client import Client

    with Client(server, token) as client:
        out = client.override(job_id, rule, component, reason, expires)
    _decided(out, as_json, f"overrode {rule} for {component}")



# -- job controls and outputs (the server's retry, suspend, resume, priority, outputs) ----


def _control_command(name: str, action: str, doc: str) -> None:
    @main.command(name, help=doc)
    @click.argument("job_id", metavar="ID")
    @server_option
    @token_option
    @click.option("--note", default=None, help="Why, kept in the job's events.")
    @click.option("--json", "as_json", is_flag=True)
    def command(job_id: str, server: str, token: str | None, note: str | None, as_json: bool) -> None:
        from studio.client import Client

        with Client(server, token) as client:
            job = client.control(job_id, action, note)
        click.echo(json.dumps(job, indent=2) if as_json else f"job {job_id}: {job['state']}")


_control_command("retry", "retry", "Queue failed or canceled job ID again with a new retry budget: only what "
                 "failed or was interrupted is redone (finished steps come from the cache).")
_control_command("suspend", "suspend", "Put job ID aside until `studio resume`: queued or at a gate at once; "
                 "running: suspending until its worker has stopped the render.")
_control_command("resume", "resume", "Queue suspended job ID again.")


@main.command("priority")
@click.argument("job_id", metavar="ID")
@click.argument("priority", type=click.IntRange(0, 100), metavar="N")
@server_option
@token_option
@click.option("--json", "as_json", is_flag=True)
def priority_(job_id: str, priority: int, server: str, token: str | None, as_json: bool) -> None:
    """Set the priority (0-100) of job ID while it waits or runs."""
    from studio.client import Client

    with Client(server, token) as client:
        job = client.set_priority(job_id, priority)
    click.echo(json.dumps(job, indent=2) if as_json else f"job {job_id}: priority {job['priority']} ({job['state']})")


@main.command("outputs")
@click.argument("job_id", metavar="ID")
@server_option
@token_option
@click.option("--download", "download", type=click.Path(path_type=Path, file_okay=False), default=None,
              metavar="DIR", help="Fetch every output into DIR (as laid out in the run's folder), each "
                                  "checked against its recorded sha256.")
@click.option("--json", "as_json", is_flag=True)
def outputs_(job_id: str, server: str, token: str | None, download: Path | None, as_json: bool) -> None:
    """The files job ID made (deliverables, the edit and its exports, the manifest), with
    their records; --download DIR fetches them."""
    from studio.client import Client

    with Client(server, token) as client:
        items = client.outputs(job_id)
        if download is not None:
            root = download.resolve()
            for o in items:
                dest = (root / o["path"]).resolve()
                if root not in dest.parents:  # a path from the server must stay inside DIR
                    raise StudioError(f"output {o['id']} names the path {o['path']!r}, outside {download}",
                                      fix="report this: a server lists paths inside the run's folder")
                client.download(o, dest)
                if not as_json:
                    click.echo(f"{dest}", err=True)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo(f"job {job_id} has no outputs yet")
    for o in items:
        picture = f"{o['width']}x{o['height']} " if o.get("width") else ""
        timing = f"{o['fps']} fps {o['duration']:.2f} s " if o.get("fps") and o.get("duration") else ""
        what = o.get("spec") or o.get("format") or o.get("kind") or ""
        size = f"{o['bytes']} B" if o.get("bytes") is not None else ""
        gone = "" if o.get("available", True) else "  (gone)"
        click.echo(f"{o['id']:<24} {o['role']:<11} {what:<16} {picture}{timing}{size}  {o['path']}{gone}")


def _read_pem(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as e:
        raise StudioError(f"cannot read the {what}: {e.strerror or e}", source=str(path),
                          fix="give a readable PEM file") from None


@main.command("verify")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--trust", "trust", type=click.Path(path_type=Path), default=None, metavar="PEM",
              help="Root CA certificates to trust (default: STUDIO_TRUST_ANCHORS); with anchors, a "
                   "signer they do not reach fails.")
@click.option("--json", "as_json", is_flag=True)
def verify_(file: Path, trust: Path | None, as_json: bool) -> None:
    """Validate FILE's C2PA manifest and print its chain: each ingredient under its parent,
    with its source type. Exit 0 valid, 1 invalid or absent."""
    from studio import provenance
    from studio.settings import get_settings

    anchors = _read_pem(trust or get_settings().trust_anchors, "trust anchors")
    try:
        report = provenance.verify(file, trust_anchors_pem=anchors)
    except provenance.ProvenanceError as e:
        if as_json:
            click.echo(json.dumps({**(e.report or {"file": str(file)}), "valid": False, "error": e.line()},
                                  indent=2))
        elif e.report is not None:
            click.echo("\n".join(provenance.chain_lines(e.report["chain"])))
        raise
    if as_json:
        click.echo(json.dumps({**report, "valid": True}, indent=2))
        return
    trust_word = "trusted" if report["trusted"] else "valid, signer not checked against trust anchors"
    click.echo(f"{file}: {trust_word}; signed by {(report['signer'] or {}).get('common_name', '?')}")
    click.echo("\n".join(provenance.chain_lines(report["chain"])))


@main.command("sign")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--components", "components", required=True, type=click.Path(path_type=Path), metavar="JSON",
              help="A JSON list of the deliverable's components: kind, name, sha256, generated, "
                   "model (generated ones), rights.")
@click.option("--spec", "spec_name", default=None, help="Channel spec whose disclosures to record.")
@click.option("--title", default=None, help="The manifest's title (default: the file's name).")
@click.option("--parent", type=click.Path(path_type=Path), default=None,
              help="The signed file this one was made from (a re-encode loses its manifest).")
def sign_(file: Path, components: Path, spec_name: str | None, title: str | None, parent: Path | None) -> None:
    """Write FILE's XMP source type and sign it with the organisation's certificate
    (STUDIO_SIGNING_CERT, STUDIO_SIGNING_KEY)."""
    from studio import provenance
    from studio.settings import get_settings
    from studio.specs import Catalog

    creds = provenance.load_credentials()
    try:
        items = json.loads(components.read_text())
    except (OSError, ValueError) as e:
        raise StudioError(f"cannot read a JSON list of components: {e}", source=str(components),
                          fix="write a JSON list of {kind, name, sha256, generated, model, rights}") from None
    if not isinstance(items, list):
        raise StudioError("not a JSON list", source=str(components), fix="write a list of components")
    disclosures: list[Any] = []
    if spec_name:
        s = get_settings()
        disclosures = list(Catalog(s.specs_dir, s.styles_dir).spec(spec_name, field="--spec").disclosure)
    done = provenance.disclose(file, provenance.components_from(items, source=str(components)),
                               disclosures=disclosures, title=title, parent=parent, credentials=creds)
    click.echo(f"{file}: signed by {done['signer']}; {done['digital_source_type'].rsplit('/', 1)[-1]}, "
               f"{done['components']} components")


@main.group()
def policy() -> None:
    """The delivery policy (studio.policy): allowed models and voices per usage class, channel
    and region, disclosure and likeness rules; STUDIO_POLICY names your own file."""


@policy.command("show")
@click.option("--json", "as_json", is_flag=True, help="print the whole policy as JSON")
def policy_show(as_json: bool) -> None:
    """The active policy file, its name and version, and its rules."""
    from studio.policy import load_policy

    p = load_policy()
    summary = p.summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{p.name} version {p.version}{f' ({p.title})' if p.title else ''}: {p.source}")
    for uc, rules in sorted(p.usage_classes.items()):
        parts = []
        for what in ("models", "voices", "channels"):
            g = getattr(rules, what)
            text = ", ".join(f"{k} {' '.join(v)}" for k, v in g.model_dump().items() if v and v != ["*"])
            if text:
                parts.append(f"{what}: {text}")
        click.echo(f"  {uc}: {'; '.join(parts) or 'anything'}")
    for r in p.channel_rules:
        extra = [f"disclosure {r.disclosure}"] if r.disclosure != "none" else []
        extra += [f"{w} deny {' '.join(g.deny)}" for w, g in (("models", r.models), ("voices", r.voices)) if g.deny]
        click.echo(f"  channels {' '.join(r.match)}: {'; '.join(extra) or 'no rule'}")
    for r in p.region_rules:
        extra = [f"{w} deny {' '.join(g.deny)}" for w, g in (("models", r.models), ("voices", r.voices)) if g.deny]
        click.echo(f"  regions {' '.join(r.regions)}: {'; '.join(extra) or 'no rule'}")
    click.echo(f"  likeness: consent required for {', '.join(p.likeness.consent_required_for) or 'no class'}")
    relaxed = {k: v for k, v in p.severity.items() if v != "block"}
    click.echo("  severity: " + (", ".join(f"{k} {v}" for k, v in relaxed.items()) or "every rule blocks"))


@policy.command("override")
@click.option("--rule", required=True, help="the rule id the policy report names, e.g. licence.territory")
@click.option("--component", required=True, help="the component as the report names it, kind:id")
@click.option("--scope", required=True, help="PROJECT/CAMPAIGN: the brief's project and campaign the sign-off is for")
@click.option("--approver", required=True, help="who signs it off")
@click.option("--reason", required=True, help="why the rule may be broken here")
@click.option("--role", default="legal", show_default=True, help="the approver's role")
@click.option("--expires", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="the last day it counts, YYYY-MM-DD (default: no end)")
def policy_override(rule: str, component: str, scope: str, approver: str, reason: str, role: str,
                    expires: Any) -> None:
    """Record an approver's sign-off that RULE may be broken by COMPONENT in SCOPE."""
    from studio.policy import record_override

    o = record_override(_engine(), rule=rule, component=component, scope=scope, approver=approver,
                        reason=reason, role=role, expires=expires.date() if expires else None)
    until = f" until {o.expires.isoformat()}" if o.expires else ""
    click.echo(f"override {o.id}: {o.rule} for {o.component} in {o.scope}{until}, signed off by {o.approver} "
               f"({o.role}): {o.reason}")


if __name__ == "__main__":
    main()
