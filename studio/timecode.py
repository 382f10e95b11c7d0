"""SMPTE timecode: labels (``HH:MM:SS:FF``, drop-frame ``HH:MM:SS;FF``) and frame counts.

Every editorial export writes the programme's start as a timecode, and they must agree,
so the arithmetic lives here, once, with no dependency on OTIO (whose conversions infer
drop-frame from the rate and cannot write non-drop 29.97).

Drop-frame (SMPTE ST 12-1) exists only for the NTSC rates 30000/1001 and 60000/1001: the
labels skip frames 0 and 1 (0-3 at 59.94) at the start of every minute except every tenth,
so that the label keeps pace with the clock (01:00:00;00 is 3600 s after 00:00:00;00, to
within 3.6 ms). The frames themselves are never dropped, only labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

TIMECODE_RE = re.compile(r"^(\d{2}):(\d{2}):(\d{2})([:;])(\d{2})$")
# Labels skipped at the start of each minute (not every tenth), per drop-frame rate.
DROPPED_PER_MINUTE = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}


def drop_frame_allowed(rate: Fraction) -> bool:
    return Fraction(rate) in DROPPED_PER_MINUTE


def default_drop_frame(rate: Fraction) -> bool:
    """US broadcast counts 29.97 and 59.94 in drop-frame; every other rate has only NDF."""
    return drop_frame_allowed(rate)


def nominal_fps(rate: Fraction) -> int:
    """The frames a label counts per second: 30 for 30000/1001, 24 for 24000/1001."""
    return max(1, round(Fraction(rate)))


def check_label(label: str) -> str:
    """``label`` if it is written HH:MM:SS:FF or HH:MM:SS;FF with minutes and seconds
    below 60, else ValueError. Whether FF fits a rate is ``to_frames``'s question."""
    m = TIMECODE_RE.match(label)
    if not m:
        raise ValueError(f"{label!r} is not a timecode; write HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)")
    if int(m[2]) > 59 or int(m[3]) > 59:
        raise ValueError(f"{label!r}: minutes and seconds run 00 to 59")
    return label


def to_frames(label: str, rate: Fraction, drop_frame: bool) -> int:
    """Frames from 00:00:00:00 to ``label`` at ``rate``. A ``;`` separator asks for
    drop-frame and is refused with ``drop_frame`` False; labels that drop-frame skips
    (00:01:00;00) and frame numbers past the rate (:30 at 29.97) are refused."""
    check_label(label)
    m = TIMECODE_RE.match(label)
    assert m is not None
    h, mi, s, sep, f = int(m[1]), int(m[2]), int(m[3]), m[4], int(m[5])
    fps = nominal_fps(rate)
    if (drop_frame or sep == ";") and not drop_frame_allowed(rate):
        raise ValueError(f"drop-frame timecode exists only at 30000/1001 and 60000/1001, not {_rate(rate)}; "
                         "write HH:MM:SS:FF")
    if sep == ";" and not drop_frame:
        raise ValueError(f"{label!r} is written drop-frame (;) but the timecode is non-drop; "
                         f"write {label.replace(';', ':')} or use drop-frame")
    if f >= fps:
        raise ValueError(f"{label!r}: frame {f:02d} does not exist at {_rate(rate)} (frames run 00-{fps - 1:02d})")
    total_minutes = 60 * h + mi
    frames = (3600 * h + 60 * mi + s) * fps + f
    if drop_frame:
        drop = DROPPED_PER_MINUTE[Fraction(rate)]
        if s == 0 and f < drop and mi % 10 != 0:
            raise ValueError(f"{label!r} does not exist in drop-frame timecode (frames 00-{drop - 1:02d} "
                             "are skipped at the start of each minute but every tenth)")
        frames -= drop * (total_minutes - total_minutes // 10)
    return frames


def to_label(frames: int, rate: Fraction, drop_frame: bool) -> str:
    """The timecode label of frame ``frames`` (counted from 00:00:00:00), wrapping at 24 h."""
    fps = nominal_fps(rate)
    if drop_frame:
        if not drop_frame_allowed(rate):
            raise ValueError(f"drop-frame timecode exists only at 30000/1001 and 60000/1001, not {_rate(rate)}")
        drop = DROPPED_PER_MINUTE[Fraction(rate)]
        per_minute = 60 * fps - drop  # labels in a minute that drops
        per_ten = 10 * 60 * fps - 9 * drop  # labels in ten minutes
        frames %= 24 * 6 * per_ten
        tens, rest = divmod(frames, per_ten)
        # The first minute of every ten keeps all its labels; each later one skips `drop`.
        skipped = 9 * drop * tens + (drop * ((rest - drop) // per_minute) if rest >= drop else 0)
        frames += skipped
    else:
        frames %= 24 * 3600 * fps
    f = frames % fps
    s = frames // fps % 60
    m = frames // (60 * fps) % 60
    h = frames // (3600 * fps)
    return f"{h:02d}:{m:02d}:{s:02d}{';' if drop_frame else ':'}{f:02d}"


@dataclass(frozen=True)
class Timecode:
    """A programme's start timecode at a rate: what every export writes."""

    label: str  # as written, separator normalised (";" for drop-frame)
    frames: int  # frames from 00:00:00:00
    rate: Fraction
    drop_frame: bool

    @classmethod
    def parse(cls, label: str, rate: Fraction, drop_frame: bool | None = None) -> Timecode:
        """``label`` at ``rate``; ``drop_frame`` None means the rate's default (and a
        ``;`` in the label asks for drop-frame)."""
        rate = Fraction(rate)
        if drop_frame is None:
            drop_frame = default_drop_frame(rate) or (";" in label and drop_frame_allowed(rate))
        frames = to_frames(label, rate, drop_frame)
        return cls(to_label(frames, rate, drop_frame), frames, rate, drop_frame)

    def label_at(self, offset: int) -> str:
        """The label ``offset`` frames after the start."""
        return to_label(self.frames + offset, self.rate, self.drop_frame)

    @property
    def display_format(self) -> str:
        return "DF" if self.drop_frame else "NDF"


def _rate(rate: Fraction) -> str:
    r = Fraction(rate)
    return str(r.numerator) if r.denominator == 1 else f"{r.numerator}/{r.denominator}"


def beat_times(shots: list[Any], rate: Fraction) -> list[tuple[str, Fraction, Fraction]]:
    """(beat id, start, duration) of each shot on the edit, exact (frame-aligned): the
    timing the voice, the music and the review's animatic all cut to."""
    out: list[tuple[str, Fraction, Fraction]] = []
    t = Fraction(0)
    for shot in shots:
        d = Fraction(shot.frames) / rate
        out.append((shot.beat_id, t, d))
        t += d
    return out
