"""What broke when Studio was tried as a new user would (issue 9): long values echoed
back, an unwritable --out found only at the end, problems reported one run at a time, a
voice speaking the wrong language, and silence on stderr during long stages."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from studio.errors import ManyErrors, StageError, StudioError, quote, shorten

from .conftest import EXAMPLE_BRIEF, ROOT
from .test_cli_errors import _assert_clean_failure, studio


def _brief(tmp_path: Path, mutate) -> Path:
    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    mutate(d)
    p = tmp_path / "brief.yaml"
    p.write_text(yaml.safe_dump(d, allow_unicode=True))
    return p


# -- defect 3: error lines quote, never echo, a bad value ------------------------------


def test_quote_keeps_short_values_and_cuts_long_ones() -> None:
    assert quote("fine") == "'fine'"
    long = "x" * 5_000_000
    q = quote(long)
    assert len(q) < 120 and "5,000,000 characters" in q and q.startswith("'xxx")
    assert len(shorten("y" * 10_000, 400)) < 450


def test_huge_narration_is_refused_in_one_short_line(tmp_path: Path) -> None:
    def mutate(d):
        d["beats"][0]["narration"] = "word " * 1_000_000  # 5 MB

    out = tmp_path / "out"
    r = studio("render", str(_brief(tmp_path, mutate)), "--out", str(out), home=tmp_path)
    _assert_clean_failure(r, "beats[0].narration", out)
    assert len(r.stderr) < 2000, f"{len(r.stderr):,} bytes on stderr"
    assert "5,000,000 characters" in r.stderr


def test_error_shows_fields_set_after_it_was_raised() -> None:
    e = StudioError("bad", fix="fix it", field="x")
    e.source = "brief.yaml"  # the brief check adds the file after the fact
    assert str(e) == "brief.yaml: x: bad — fix it"


def test_error_crosses_a_pickle_whole() -> None:
    """A StudioError raised in a Ray actor reaches the driver with every field."""
    e = StageError("backend broke", fix="check it", stage="candidates", shot="b01", field="seed")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is StageError and back.line() == e.line() and str(back) == e.line()


# -- defect 4: an --out that cannot be replaced is refused up front ----------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_out_owned_by_another_user_in_sticky_folder_is_refused_up_front(tmp_path: Path) -> None:
    """/tmp-like folder (sticky): a previous output owned by root cannot be renamed away
    by another user. The check runs as that user in a forked child."""
    import shutil
    import tempfile

    from studio.pipeline import check_out

    # pytest's tmp_path sits in a root-only folder: the other user needs a way in.
    sticky = Path(tempfile.mkdtemp(prefix="studio-sticky-", dir="/tmp"))
    sticky.chmod(0o1777)
    out = sticky / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")  # an earlier Studio output, root's
    r_fd, w_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, run the check, report its line
        os.close(r_fd)
        try:
            os.setgid(65534)
            os.setuid(65534)
            try:
                check_out(out)
                msg = "ok"
            except StudioError as e:
                msg = e.line()
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                msg = f"unexpected {type(e).__name__}: {e}"
            os.write(w_fd, msg.encode())
        finally:
            os._exit(0)
    os.close(w_fd)
    os.waitpid(pid, 0)
    with os.fdopen(r_fd) as f:
        msg = f.read()
    assert "--out: cannot be replaced: it belongs to another user (uid 0)" in msg, msg
    # and as its owner the same folder is fine
    check_out(out)
    shutil.rmtree(sticky)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a second filesystem (/dev/shm)")
def test_publish_failure_keeps_the_finished_work(tmp_path: Path) -> None:
    """The final rename fails (here: across filesystems, EXDEV): the finished run is not
    deleted, the error says where it is, and the earlier output is back in place."""
    import shutil
    import tempfile

    from studio.pipeline import PublishError, publish

    if os.stat("/dev/shm").st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm is on the same filesystem as the test folder")
    work = Path(tempfile.mkdtemp(prefix=".out.partial-", dir="/dev/shm"))
    (work / "manifest.json").write_text('{"new": true}')
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"old": true}')
    try:
        with pytest.raises(PublishError) as e:
            publish(work, out)
        assert f"the finished output is kept in {work}" in str(e.value)
        assert (work / "manifest.json").read_text() == '{"new": true}'
        assert (out / "manifest.json").read_text() == '{"old": true}'
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- defects 5 and 6: every problem in one pass; the voice's language ------------------


def test_every_problem_in_one_pass(tmp_path: Path) -> None:
    def mutate(d):
        d["locale"] = "fr-FR"
        d.pop("voice", None)  # let Studio look for a French voice
        d["beats"][1]["narration"] = "🚀🚀🚀"
        d["channels"] = ["youtube-1080p", "no-such-spec"]

    out = tmp_path / "out"
    r = studio("render", str(_brief(tmp_path, mutate)), "--out", str(out), home=tmp_path)
    _assert_clean_failure(r, "no registered voice speaks fr", out)
    lines = r.stderr.strip().splitlines()
    assert any("beats[1].narration" in ln and "nothing a voice can speak" in ln for ln in lines), r.stderr
    assert any("channels[1]: unknown channel spec 'no-such-spec'" in ln for ln in lines), r.stderr
    assert len(lines) == 3, r.stderr


def test_no_voice_for_locale_says_which_languages_there_are(tmp_path: Path) -> None:
    from audio.voiceover import choose_voice
    from audio.voices import VoiceRegistry
    from studio.brief import Brief

    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d["locale"] = "fr-FR"
    d.pop("voice", None)
    with pytest.raises(StudioError) as e:
        choose_voice(Brief.model_validate(d), VoiceRegistry())
    line = e.value.line()
    assert "no registered voice speaks fr (locale fr-FR); the registered voices speak en (joe-us" in line
    assert "refused" not in line and "only (" not in line  # no English voices listed as refused


def test_named_voice_in_another_language_is_refused(tmp_path: Path) -> None:
    def mutate(d):
        d["locale"] = "fr-FR"
        d["voice"] = "joe-us"
        d["beats"][0]["narration"] = "Bonjour à tous."

    out = tmp_path / "out"
    r = studio("render", str(_brief(tmp_path, mutate)), "--out", str(out), home=tmp_path)
    _assert_clean_failure(
        r, "voice: voice 'joe-us' speaks en_US but the brief's locale is fr-FR: the narration "
           "would be read with en_US pronunciation — name a voice that speaks fr (`studio voices`)", out)


def test_many_errors_all_printed() -> None:
    e = ManyErrors([StudioError("a", field="x"), StudioError("b", field="y")])
    assert e.lines() == ["x: a", "y: b"]


# -- defect 13: progress lines without a terminal; Ray's banner kept out ---------------


def test_plain_reporter_prints_each_unit_and_tenths_of_encodes() -> None:
    from studio.progress import PlainReporter

    buf = io.StringIO()
    r = PlainReporter(buf)
    r.stage_start("clips", 2)
    r.advance("clips", shot="b01")
    r.advance("clips", shot="b02")
    r.stage_done("clips")
    r.stage_start("conform", 2)
    for _ in range(40):  # an encode's fractional progress, for two specs at once
        r.advance("conform", amount=0.025, spec="a")
        r.advance("conform", amount=0.025, spec="b")
    lines = buf.getvalue().splitlines()
    assert lines[0] == "studio: clips ..."
    assert lines[1].startswith("studio: clips 1/2 shot=b01 (") and lines[2].startswith("studio: clips 2/2 shot=b02 (")
    assert lines[3].startswith("studio: clips done in ")
    conform = [ln for ln in lines if ln.startswith("studio: conform ") and "%" in ln]
    assert [ln.split()[2] for ln in conform] == [f"{p}%" for p in range(10, 101, 10)]


def test_local_ray_start_prints_nothing_of_rays_own(tmp_path: Path) -> None:
    code = ("from studio.settings import Settings; from studio.ray_runtime import ensure_ray; "
            "import ray; ensure_ray(Settings(home='h', ray_num_cpus=1)); ray.shutdown()")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    env.pop("STUDIO_RAY_LOGS", None)
    env.pop("RAY_AUTH_MODE", None)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_stills_only_brief_is_not_refused_over_a_voice_it_never_uses() -> None:
    """Narration is spoken for video channels only: a public stills-only brief must not be
    refused because the shipped voice is licensed for internal use."""
    from audio.voices import VoiceRegistry
    from studio.brief import Brief
    from studio.models import ModelRegistry
    from studio.pipeline import check_brief
    from studio.specs import Catalog

    d = yaml.safe_load(EXAMPLE_BRIEF.read_text())
    d["usage_class"] = "public"
    d.pop("voice", None)
    d["channels"] = ["banner-300x250", "banner-728x90"]
    brief = Brief.model_validate(d)
    specs = check_brief(brief, Catalog(), EXAMPLE_BRIEF.parent, registry=ModelRegistry(),
                        voices=VoiceRegistry())
    assert [s.name for s in specs] == ["banner-300x250", "banner-728x90"]
    # with a video channel the same brief is refused over its voice, as before
    d["channels"] = ["youtube-1080p", "banner-300x250"]
    with pytest.raises(ManyErrors) as e:
        check_brief(Brief.model_validate(d), Catalog(), EXAMPLE_BRIEF.parent, registry=ModelRegistry(),
                    voices=VoiceRegistry())
    assert any(err.field == "voice" and "public" in err.what for err in e.value.errors), e.value.lines()


class _Warnings:
    """A reporter that keeps warnings (QuietReporter prints them)."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def stage_start(self, stage, total=None) -> None: ...
    def advance(self, stage, amount=1, **fields) -> None: ...
    def stage_done(self, stage, **fields) -> None: ...
    def event(self, name, **fields) -> None: ...
    def close(self) -> None: ...

    def warn(self, message, **fields) -> None:
        self.warnings.append(message)


def test_a_silent_spot_is_delivered_with_a_silent_track_and_a_warning(tmp_path: Path, settings,
                                                                     ray_session) -> None:
    """No narration, music none, effects off: there is nothing to normalise. The run used
    to fail at the master after the picture was made; now it ships silence and says so."""
    import json

    from studio.pipeline import render

    brief = {
        "project": "demo", "campaign": "silent", "purpose": "a muted autoplay loop",
        "channels": ["youtube-1080p"], "style_pack": "golden-hour", "candidates": 1, "captions": False,
        "music": {"source": "none"}, "effects": {"enabled": False},
        "beats": [{"id": "b01", "duration": 2, "subject": "a glowing orb"}],
    }
    path = tmp_path / "silent.yaml"
    path.write_text(yaml.safe_dump(brief))
    rep = _Warnings()
    render(path, tmp_path / "out", settings=settings, reporter=rep)
    assert any("youtube-1080p: the spot has no sound" in w and "silent track" in w for w in rep.warnings), rep.warnings
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    (d,) = m["deliverables"]
    assert d["loudness"]["silent"] is True and d["loudness"]["within_spec"] is False
    assert d["loudness"]["true_peak"] is None  # silence has no peak; -inf is not JSON
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0",
                            str(tmp_path / "out" / d["path"])], capture_output=True, text=True, check=True)
    assert sorted(probe.stdout.split()) == ["audio", "video"]
