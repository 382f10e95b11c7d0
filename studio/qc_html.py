"""The QC report as one self-contained HTML page: every check with its status, finding,
fix, measured values and threshold, and each event with its timecodes and a thumbnail
(inline PNG data URIs, so the page can be mailed or attached to a review as one file)."""

from __future__ import annotations

import base64
import html
import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from studio.qc import QcReport

_COLOURS = {"pass": "#1b7f3b", "warn": "#a66a00", "fail": "#b3261e", "skipped": "#666"}
MAX_EVENTS_SHOWN = 30


def _thumb(report: QcReport, frame: int | None) -> str:
    """A data URI of the stored thumbnail at or just after ``frame`` (thumbnails are kept
    every half second), or "" when there is none."""
    if frame is None or not report.thumbs:
        return ""
    keys = sorted(report.thumbs)
    pick = next((k for k in keys if k >= frame), keys[-1])
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(report.thumbs[pick], np.uint8)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _kv(d: dict[str, Any]) -> str:
    return html.escape(json.dumps(d, default=str, ensure_ascii=False))


def render_html(report: QcReport) -> str:
    e = html.escape
    rows = []
    for c in report.checks:
        events = []
        for ev in c.events[:MAX_EVENTS_SHOWN]:
            uri = _thumb(report, ev.frame)
            img = f'<img src="{uri}" alt="frame at {e(ev.start_tc)}">' if uri else ""
            events.append(f"<li>{img}<span class=tc>{e(ev.start_tc)} – {e(ev.end_tc)}</span> "
                          f"({ev.start_s:.3f}–{ev.end_s:.3f} s) {e(ev.detail)}</li>")
        more = len(c.events) - MAX_EVENTS_SHOWN
        if more > 0:
            events.append(f"<li>… and {more} more (see the JSON report)</li>")
        rows.append(
            f'<tr><td><b>{e(c.id)}</b></td>'
            f'<td style="color:{_COLOURS[c.status]}"><b>{e(c.status)}</b><br><small>{e(c.severity)}</small></td>'
            f"<td>{e(c.finding)}" + (f"<br><i>Fix: {e(c.fix)}</i>" if c.fix else "")
            + (f"<ul>{''.join(events)}</ul>" if events else "") + "</td>"
            f"<td><code>{_kv(c.measured)}</code></td><td><code>{_kv(c.threshold)}</code>"
            f"<br><small>spec: {e(c.spec_field)}</small></td></tr>")
    verdict = report.verdict
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>QC {e(report.file)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #ccc; padding: .4em; vertical-align: top; text-align: left; }}
code {{ font-size: .8em; word-break: break-word; }}
ul {{ list-style: none; padding: 0; }} li {{ margin: .3em 0; }}
img {{ height: 54px; vertical-align: middle; margin-right: .5em; border: 1px solid #999; }}
.tc {{ font-family: monospace; }}
</style></head><body>
<h1>QC: <span style="color:{_COLOURS['fail' if verdict == 'fail' else verdict]}">{e(verdict)}</span></h1>
<p>{e(report.file)} against <b>{e(report.spec)}</b> ({e(report.kind)}{
    f", {e(report.rate)} fps, {report.frames} frames, {report.duration} s" if report.rate else ""}).
Schema {e(report.schema)}. Timecodes count from the file's first frame at its own rate.</p>
<table><tr><th>check</th><th>status</th><th>finding</th><th>measured</th><th>threshold</th></tr>
{''.join(rows)}
</table></body></html>
"""
