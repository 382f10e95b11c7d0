"""Music and effects libraries: folders of audio files, each with a rights sidecar.

A track is one ``MusicTrack`` document (``"schema": "MusicTrack.1"``, YAML or JSON) beside
its audio: id, file (relative to the sidecar), title, tags, optional bpm and key, and its
rights (licence, owner, source, the usage classes it may serve, attribution, expiry).
Effects libraries use the same document with ``kind: effects`` and, optionally, ``peak``:
the second in the file where the whoosh peaks or the hit lands (measured from the audio
when missing).

``MediaLibrary`` reads every .yaml/.yml/.json under its folder (subfolders too, hidden
files skipped) and checks everything when it is loaded, so a bad library is refused before
any rendering, with every problem listed at once: sidecar fields (field path and fix),
duplicate ids, a missing file, a file ffprobe cannot read or that has no audio stream, a
file that is truncated or corrupt (a full decode with ``-xerror``: a WAV cut short still
probes fine, since ffprobe takes its duration from the file size), and expired rights.
Probe and decode results are cached per process by path, size and mtime.

``fit`` makes a bed of an exact length from a track: decoded by ffmpeg to the output rate
and stereo (mono is copied to both sides, more channels are downmixed), looped on whole
bars when the bpm is known (else on the whole track), cut to the exact sample count and
ended with a fade-out.
"""

from __future__ import annotations

import json
import math
import subprocess
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from audio.music import write_wav
from audio.voices import ID_RE, USAGE_CLASSES, UsageClass
from studio import documents
from studio.errors import ManyErrors, StageError, StudioError
from studio.rights import TERRITORY_RE, Consent, Medium

Kind = Literal["music", "effects"]
FAMILY = "MusicTrack"
SIDECAR_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FIT_SECONDS = 3600.0
SEAM_SECONDS = 0.03  # the outgoing tail fades over this at each loop seam: no click, no smear
FADE_OUT_MAX = 1.5  # the fit's fade-out: 1.5 s, or 10% of a shorter bed


class Rights(BaseModel):
    model_config = ConfigDict(extra="forbid")
    licence: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    source: str = Field(min_length=1, description="where the file came from: vendor, URL, 'generated'")
    usage_classes: list[UsageClass] = Field(min_length=1)
    attribution: str | None = Field(None, description="credit line the licence requires, if any")
    expires: date | None = Field(None, description="last day the licence allows use")
    # The rights ledger's fields (studio.rights), each optional: the contract or grant
    # number (default track:<id>), who granted it (default: owner), where, on which media
    # and channels, from when, and whose voice or likeness the track holds, with consent.
    licence_id: str | None = Field(None, min_length=1, max_length=200, description="the contract or grant number")
    licensor: str | None = Field(None, min_length=1, max_length=200, description="who grants it (default: owner)")
    territories: list[Annotated[str, Field(pattern=TERRITORY_RE)]] | None = Field(
        None, min_length=1, description="ISO 3166-1 alpha-2 codes, EU, EEA or worldwide")
    media: list[Medium] | None = Field(None, min_length=1, description="digital, broadcast, print")
    channels: list[str] | None = Field(None, min_length=1, description="channel spec names or globs (* = any)")
    starts: date | None = Field(None, description="first day the licence allows use")
    real_person: str | None = Field(None, min_length=1, max_length=200,
                                    description="whose voice or likeness the track holds, if a real person's")
    consent: Consent | None = None

    @model_validator(mode="after")
    def _term(self) -> Rights:
        if self.starts and self.expires and self.expires < self.starts:
            raise ValueError(f"expires {self.expires} is before starts {self.starts}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The ledger's fields came later: left out while unset, so a sidecar without them
        # records (and keys what it makes) as it did.
        out = handler(self)
        if isinstance(out, dict):
            for key in _LEDGER_FIELDS:
                if out.get(key, 0) is None:
                    out.pop(key)
        return out


_LEDGER_FIELDS = ("licence_id", "licensor", "territories", "media", "channels", "starts", "real_person", "consent")


class Track(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field("MusicTrack.1", alias="schema")
    id: str = Field(pattern=ID_RE)
    file: str = Field(min_length=1, description="audio file, relative to this sidecar")
    title: str = Field(min_length=1)
    kind: Kind | None = Field(None, description="music or effects; default: the library's kind")
    tags: list[str] = Field(default_factory=list)
    bpm: float | None = Field(None, gt=20, le=300, description="loops are cut on whole bars of 4/4")
    key: str | None = Field(None, pattern=r"^[A-G][#b]?( ?(major|minor|m))?$")
    peak: float | None = Field(None, ge=0, description="effects: seconds into the file of the peak/impact")
    rights: Rights

    @field_validator("file")
    @classmethod
    def _relative(cls, v: str) -> str:
        if Path(v).is_absolute():
            raise ValueError("must be relative to the sidecar's folder")
        return v

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        return [t.strip().lower() for t in v if t.strip()]


# -- ffprobe / ffmpeg ---------------------------------------------------------------------

_PROBES: dict[tuple[str, int, int], dict[str, Any]] = {}


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " / ".join(lines[-2:]) or "no message"


def probe(path: Path, *, check_decode: bool = True) -> dict[str, Any]:
    """Codec, sample rate, channels and duration of the first audio stream, after a full
    decode check (skip it only when the caller decodes the file itself). Raises
    ValueError with ffmpeg's reason when the file is not good audio."""
    key = _stat_key(path)
    if key in _PROBES:
        return _PROBES[key]
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
         "stream=codec_name,sample_rate,channels:format=duration,format_name", "-of", "json", str(path)],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"ffprobe cannot read it: {_tail(proc.stderr)}")
    data = json.loads(proc.stdout or "{}")
    streams = data.get("streams") or []
    if not streams:
        raise ValueError("it has no audio stream")
    s = streams[0]
    # ffprobe reads headers only; a decode to nowhere with -xerror catches cut-short and
    # damaged data ("corrupt input packet"), which would otherwise play as a glitch.
    if check_decode:
        dec = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-xerror", "-i", str(path),
                              "-map", "0:a:0", "-f", "null", "-"], capture_output=True, text=True, check=False)
        if dec.returncode != 0:
            raise ValueError(f"it is truncated or corrupt: ffmpeg: {_tail(dec.stderr)}")
    try:
        info = {
            "codec": s.get("codec_name"),
            "format": (data.get("format") or {}).get("format_name"),
            "sample_rate": int(s["sample_rate"]),
            "channels": int(s["channels"]),
            "duration": float((data.get("format") or {})["duration"]),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"ffprobe reports no sample rate, channels or duration ({e})") from e
    if info["duration"] <= 0 or info["channels"] < 1:
        raise ValueError("it holds no audio samples")
    if check_decode:
        _PROBES[key] = info  # only fully checked files are remembered as good
    return info


def decode(path: Path, sample_rate: int, channels: int) -> np.ndarray:
    """The file as float32 stereo at ``sample_rate`` (shape (n, 2)). ``channels`` is the
    source's count: mono is duplicated here rather than by ffmpeg's upmix (which would
    lower it by 3 dB), more than two are downmixed by ffmpeg's standard matrix."""
    args = ["ffmpeg", "-hide_banner", "-nostats", "-v", "error", "-xerror", "-i", str(path),
            "-map", "0:a:0", "-vn", "-ar", str(sample_rate)]
    if channels > 2:
        args += ["-ac", "2"]
    args += ["-f", "f32le", "-c:a", "pcm_f32le", "-"]
    proc = subprocess.run(args, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"it is truncated or corrupt: ffmpeg: {_tail(proc.stderr.decode('utf-8', 'replace'))}")
    out_ch = 1 if channels == 1 else 2
    x = np.frombuffer(proc.stdout, dtype="<f4")
    x = x[: x.size - x.size % out_ch].reshape(-1, out_ch)
    if x.shape[0] == 0:
        raise ValueError("it decodes to no samples")
    if out_ch == 1:
        x = np.repeat(x, 2, axis=1)
    return x


def envelope_peak(x: np.ndarray, sample_rate: int) -> float:
    """Seconds to the loudest 10 ms of ``x`` (its centre): where a whoosh peaks."""
    power = (x.astype(np.float64) ** 2).mean(axis=1)
    w = max(1, int(0.01 * sample_rate))
    if power.size <= w:
        return float(np.argmax(power)) / sample_rate
    c = np.concatenate([[0.0], np.cumsum(power)])
    avg = (c[w:] - c[:-w]) / w
    return (int(np.argmax(avg)) + w / 2) / sample_rate


# -- the library --------------------------------------------------------------------------


def _sidecars(folder: Path) -> list[Path]:
    # Hidden files are skipped: atomic writers leave ".name.tmp" files while they work.
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in SIDECAR_SUFFIXES
                  and p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


class MediaLibrary:
    """Every track of a library folder, checked when loaded."""

    def __init__(self, folder: str | Path, kind: Kind = "music", *, today: date | None = None) -> None:
        if kind not in ("music", "effects"):
            raise StudioError(f"unknown library kind {kind!r}", fix="use music or effects")
        self.folder = Path(folder)
        self.kind: Kind = kind
        self.stage = kind
        self.tracks: dict[str, Track] = {}
        self.paths: dict[str, Path] = {}
        self.sidecars: dict[str, Path] = {}
        self.infos: dict[str, dict[str, Any]] = {}
        self._peaks: dict[str, float] = {}
        self._audio: dict[tuple[str, int], np.ndarray] = {}
        today = today or date.today()
        if not self.folder.is_dir():
            raise StudioError(f"the {kind} library folder does not exist", stage=self.stage,
                              source=str(self.folder),
                              fix=f"create it with audio files and MusicTrack sidecars, or point the "
                                  f"{kind} library setting at an existing folder")
        files = _sidecars(self.folder)
        if not files:
            raise StudioError(f"the {kind} library has no tracks (no .yaml/.json sidecars)",
                              stage=self.stage, source=str(self.folder),
                              fix="add one MusicTrack.1 sidecar per audio file (id, file, title, tags, rights)")
        errors: list[StudioError] = []
        for sidecar in files:
            try:
                self._add(sidecar, today)
            except ManyErrors as e:
                errors.extend(e.errors)
            except StudioError as e:
                errors.append(e)
        if errors:
            errors = [StudioError(e.what, stage=e.stage or self.stage, shot=e.shot, field=e.field,
                                  source=e.source, fix=e.fix) for e in errors]
            raise errors[0] if len(errors) == 1 else ManyErrors(errors)

    def _add(self, sidecar: Path, today: date) -> None:
        track = documents.load(sidecar, Track, FAMILY)
        src = str(sidecar)
        if track.id in self.tracks:
            raise StudioError(f"track id {track.id!r} is also used by {self.sidecars[track.id]}",
                              fix="give each track its own id", field="id", source=src)
        if track.kind is not None and track.kind != self.kind:
            article = {"music": "a music", "effects": "an effects"}
            raise StudioError(f"track {track.id!r} is {article[track.kind]} track, in {article[self.kind]} library",
                              fix=f"move it to {article[track.kind]} library or set kind: {self.kind}",
                              field="kind", source=src)
        path = (sidecar.parent / track.file).resolve()
        if not path.is_file():
            raise StudioError(f"track {track.id!r}: its file {path} does not exist",
                              fix=f"put the audio file there, or correct `file:` (relative to {sidecar.parent})",
                              field="file", source=src)
        try:
            # Effects are short: they are decoded now, which both checks them (so the
            # separate decode check is skipped) and finds the peak a cue is aligned on.
            info = probe(path, check_decode=self.kind == "music")
            if self.kind == "effects":
                self._audio[(track.id, 48000)] = decode(path, 48000, int(info["channels"]))
        except ValueError as e:
            raise StudioError(f"track {track.id!r}: {path} is not readable audio: {e}",
                              fix="replace it with a good audio file (WAV, FLAC, MP3, ...) or remove "
                                  "the track's sidecar", field="file", source=src) from None
        expires = track.rights.expires
        if expires is not None and expires < today:
            raise StudioError(f"track {track.id!r}: its rights expired on {expires.isoformat()}",
                              fix="renew the licence and update rights.expires, or remove the track "
                                  "from the library", field="rights.expires", source=src)
        self.tracks[track.id] = track
        self.paths[track.id] = path
        self.sidecars[track.id] = sidecar
        self.infos[track.id] = info
        if self.kind == "effects":
            self.peak(track)

    # -- lookup ---------------------------------------------------------------------------

    def ids(self) -> list[str]:
        return sorted(self.tracks)

    def get(self, track_id: str, field: str | None = None) -> Track:
        try:
            return self.tracks[track_id]
        except KeyError:
            raise StudioError(f"no {self.kind} track {track_id!r} in {self.folder}",
                              fix="use one of: " + ", ".join(self.ids()), stage=self.stage,
                              field=field or f"{self.kind}.track") from None

    def path(self, track: Track) -> Path:
        return self.paths[track.id]

    def info(self, track: Track) -> dict[str, Any]:
        return self.infos[track.id]

    def peak(self, track: Track) -> float:
        """Seconds into an effect's file where it peaks (the sidecar's, else measured)."""
        if track.id not in self._peaks:
            self._peaks[track.id] = track.peak if track.peak is not None else envelope_peak(self.audio(track), 48000)
        return self._peaks[track.id]

    def audio(self, track: Track, sample_rate: int = 48000) -> np.ndarray:
        """The track decoded to float32 stereo at ``sample_rate`` (cached)."""
        key = (track.id, sample_rate)
        if key not in self._audio:
            path = self.path(track)
            try:
                x = decode(path, sample_rate, int(self.infos[track.id]["channels"]))
            except ValueError as e:
                raise StageError(f"track {track.id!r}: {path} cannot be decoded: {e}", stage=self.stage,
                                 source=str(self.sidecars[track.id]),
                                 fix="replace the file or remove the track's sidecar") from None
            self._audio[key] = x
        return self._audio[key]

    # -- rights ---------------------------------------------------------------------------

    def _check_class(self, usage_class: str, field: str) -> None:
        if usage_class not in USAGE_CLASSES:
            raise StudioError(f"unknown usage class {usage_class!r}",
                              fix="use one of: " + ", ".join(USAGE_CLASSES), stage=self.stage, field=field)

    def allowed_for(self, usage_class: str) -> list[str]:
        return [i for i in self.ids() if usage_class in self.tracks[i].rights.usage_classes]

    def check_usage(self, track: Track, usage_class: str, *, field: str = "usage_class") -> None:
        """Refuse a track its rights do not allow for ``usage_class``."""
        self._check_class(usage_class, field)
        if usage_class in track.rights.usage_classes:
            return
        allowed = " and ".join(c for c in USAGE_CLASSES if c in track.rights.usage_classes)
        others = self.allowed_for(usage_class)
        hint = f" (e.g. {', '.join(others[:5])})" if others else ""
        raise StudioError(
            f"{self.kind} track {track.id!r} is licensed for {allowed} use only, not {usage_class} "
            f"(licence: {track.rights.licence})",
            fix=f"pick a track licensed for {usage_class} use{hint} or change usage_class",
            stage=self.stage, field=field)

    def ranked(self, tags: list[str], usage_class: str, *, need: str | None = None) -> list[Track]:
        """Tracks licensed for ``usage_class`` (and tagged ``need``), best tag overlap first,
        ties by id. Raises with the reason when there are none."""
        self._check_class(usage_class, "usage_class")
        want = {t.strip().lower() for t in tags if t.strip()}
        pool = [self.tracks[i] for i in self.ids() if need is None or need in self.tracks[i].tags]
        if not pool:
            raise StageError(f"no {self.kind} track in {self.folder} is tagged {need!r}",
                             fix=f"add one (tags: [{need}]) to the library", stage=self.stage,
                             field="tags")
        licensed = [t for t in pool if usage_class in t.rights.usage_classes]
        if not licensed:
            why = "; ".join(f"{t.id}: {' and '.join(t.rights.usage_classes)} only" for t in pool[:6])
            what = f"tagged {need!r} " if need else ""
            raise StudioError(
                f"no {self.kind} track {what}in {self.folder} is licensed for {usage_class} use ({why})",
                fix=f"add a track whose rights allow {usage_class} use, or change usage_class",
                stage=self.stage, field="usage_class")
        return sorted(licensed, key=lambda t: (-len(want & set(t.tags)), t.id))

    def pick(self, tags: list[str], usage_class: str, *, need: str | None = None) -> Track:
        """The licensed track with the most tags in common with ``tags`` (ties by id)."""
        return self.ranked(tags, usage_class, need=need)[0]

    # -- fitting --------------------------------------------------------------------------

    def fit(self, track: Track, duration: float, out_wav: Path, *,
            sample_rate: int = 48000) -> dict[str, Any]:
        """``track`` as a stereo 24-bit WAV of exactly ``round(duration * sample_rate)``
        samples: looped on whole bars (bpm known) or whole track, ended with a fade-out."""
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
                or not math.isfinite(duration) or duration <= 0 or duration > MAX_FIT_SECONDS:
            raise StageError(f"duration {duration!r} s is outside 0-{MAX_FIT_SECONDS:g} s", stage=self.stage,
                             field="duration", fix="pass the spot's length in seconds")
        sr = sample_rate
        total_n = round(duration * sr)
        if total_n < 1:
            raise StageError(f"duration {duration:g} s is shorter than one sample", stage=self.stage,
                             field="duration", fix="pass a longer duration")
        info = self.info(track)
        x = self.audio(track, sr).astype(np.float64)
        done: list[str] = []
        if info["sample_rate"] != sr:
            done.append(f"resampled from {info['sample_rate']} Hz to {sr} Hz")
        if info["channels"] == 1:
            done.append("mono copied to both channels")
        elif info["channels"] > 2:
            done.append(f"downmixed {info['channels']} channels to stereo")

        # The loop unit: whole 4/4 bars from the top when the bpm is known (a loop that
        # keeps the downbeats on the grid), else the whole track.
        unit_n = x.shape[0]
        unit_desc = "whole track"
        bar_n = 0
        if track.bpm:
            bar_n = round(240.0 / track.bpm * sr)
            bars = x.shape[0] // bar_n
            if bars >= 1:
                unit_n = bars * bar_n
                unit_desc = f"{bars} whole bars at {track.bpm:g} bpm"
        unit = x[:unit_n]
        repeats = 0
        if x.shape[0] < total_n:
            # k copies of the unit, then the whole track (so its own ending plays if it fits).
            repeats = math.ceil((total_n - x.shape[0]) / unit_n)
            out = np.concatenate([unit] * repeats + [x])
            seam_n = min(round(SEAM_SECONDS * sr), unit_n // 4)
            after = x[unit_n:unit_n + seam_n]  # what follows the unit in the track itself
            for k in range(1, repeats + 1):
                s = k * unit_n
                if seam_n == 0:
                    continue
                fin = np.sin(np.linspace(0, np.pi / 2, seam_n)) ** 2
                if after.shape[0] == seam_n:
                    # What followed the unit in the track starts on the same bar line as
                    # the next copy: crossfade from it into the copy (amplitudes summing to
                    # one, as the two are alike), so the downbeat keeps its attack and the
                    # outgoing tails do not stop dead.
                    out[s:s + seam_n] = out[s:s + seam_n] * fin[:, None] + after * (1 - fin)[:, None]
                else:
                    # Nothing follows the unit (it is the whole file): fade its last moments
                    # and let the next copy start untouched on the grid.
                    out[s - seam_n:s] *= (1 - fin)[:, None]
            done.append(f"looped {repeats} time{'s' if repeats != 1 else ''} ({unit_desc}, "
                        f"{unit_n / sr:.3f} s)")
        else:
            out = x
        out = out[:total_n].copy()
        trimmed = out.shape[0] < x.shape[0] + repeats * unit_n
        fade_n = min(total_n, round(min(FADE_OUT_MAX, 0.1 * duration) * sr))
        if fade_n > 0:
            out[-fade_n:] *= (np.cos(np.linspace(0, np.pi / 2, fade_n)) ** 2)[:, None]
        if trimmed:
            done.append(f"trimmed to {total_n} samples")
        done.append(f"faded out over {fade_n / sr:.3f} s")
        clipped = int(np.count_nonzero(np.abs(out) > 1.0))
        sha = write_wav(Path(out_wav), np.clip(out, -1.0, 1.0), sr)
        return {
            "track": track.id,
            "title": track.title,
            "file": str(self.path(track)),
            "source": {k: info[k] for k in ("codec", "sample_rate", "channels", "duration")},
            "bpm": track.bpm,
            "key": track.key,
            "loop_unit": unit_desc,
            "loop_unit_seconds": unit_n / sr,
            "looped": repeats,
            "bar_seconds": bar_n / sr if bar_n else None,
            "fade_out_seconds": fade_n / sr,
            "resampled": info["sample_rate"] != sr,
            "done": done,
            "clipped_samples": clipped,
            "sample_rate": sr,
            "duration": total_n / sr,
            "samples": total_n,
            "format": "wav pcm_s24le stereo",
            "sha256": sha,
            "rights": track.rights.model_dump(mode="json"),
        }
