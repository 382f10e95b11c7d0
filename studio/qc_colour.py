"""Colour measures for the QC palette check: sRGB to CIELAB (D65), CIEDE2000, and the
dominant colours of a picture by k-means in CIELAB.

Why this measure: the style pack's palette is a handful of sRGB colours; a deliverable
graded to it has its large areas near them. The check takes the picture's dominant
colours (k-means over pixels sampled once a second, weighted by the share of pixels each
covers), finds each one's nearest palette colour by CIEDE2000 (the CIE's perceptual
difference: about 1 is just noticeable, 10+ clearly another colour), and reports the
weighted mean. A mean, not a maximum: a palette does not name every colour a picture may
hold (skin, sky), only the ones that should dominate."""

from __future__ import annotations

import numpy as np

_WHITE = np.array([0.95047, 1.0, 1.08883])  # D65
_M = np.array([[0.4124564, 0.3575761, 0.1804375],
               [0.2126729, 0.7151522, 0.0721750],
               [0.0193339, 0.1191920, 0.9503041]])


def hex_to_rgb(c: str) -> tuple[int, int, int]:
    c = c.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """8-bit-scale sRGB (…, 3) to CIELAB (D65)."""
    c = np.asarray(rgb, np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ _M.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 (Sharma, Wu and Dalal's formulation), broadcasting over the leading axes."""
    L1, a1, b1 = lab1[..., 0], lab1[..., 1], lab1[..., 2]
    L2, a2, b2 = lab2[..., 0], lab2[..., 1], lab2[..., 2]
    C1, C2 = np.hypot(a1, b1), np.hypot(a2, b2)
    Cm = (C1 + C2) / 2
    G = 0.5 * (1 - np.sqrt(Cm ** 7 / (Cm ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + G) * a1, (1 + G) * a2
    C1p, C2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dLp = L2 - L1
    dCp = C2p - C1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(C1p * C2p == 0, 0, dh)
    dHp = 2 * np.sqrt(C1p * C2p) * np.sin(np.radians(dh / 2))
    Lpm = (L1 + L2) / 2
    Cpm = (C1p + C2p) / 2
    hsum = h1p + h2p
    hpm = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, (hsum + 360) / 2, (hsum - 360) / 2), hsum / 2)
    hpm = np.where(C1p * C2p == 0, hsum, hpm)
    T = (1 - 0.17 * np.cos(np.radians(hpm - 30)) + 0.24 * np.cos(np.radians(2 * hpm))
         + 0.32 * np.cos(np.radians(3 * hpm + 6)) - 0.20 * np.cos(np.radians(4 * hpm - 63)))
    dtheta = 30 * np.exp(-(((hpm - 275) / 25) ** 2))
    Rc = 2 * np.sqrt(Cpm ** 7 / (Cpm ** 7 + 25.0 ** 7))
    Sl = 1 + 0.015 * (Lpm - 50) ** 2 / np.sqrt(20 + (Lpm - 50) ** 2)
    Sc = 1 + 0.045 * Cpm
    Sh = 1 + 0.015 * Cpm * T
    Rt = -np.sin(np.radians(2 * dtheta)) * Rc
    return np.sqrt((dLp / Sl) ** 2 + (dCp / Sc) ** 2 + (dHp / Sh) ** 2 + Rt * (dCp / Sc) * (dHp / Sh))


def dominant_colours(pixels: np.ndarray, k: int = 6, iterations: int = 12,
                     max_pixels: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` dominant colours of (N, 3) 8-bit RGB pixels (k-means in CIELAB, seeded
    deterministically from evenly spaced pixels) and the share of pixels each covers.
    Returned as 8-bit RGB centres (the mean RGB of each cluster) and weights summing to 1."""
    px = np.asarray(pixels, np.float64).reshape(-1, 3)
    if len(px) == 0:
        return np.zeros((0, 3)), np.zeros(0)
    if len(px) > max_pixels:
        px = px[:: len(px) // max_pixels + 1]
    lab = rgb_to_lab(px)
    order = np.argsort(lab[:, 0], kind="stable")  # seeds spread from dark to light
    k = min(k, len(px))
    centres = lab[order[np.linspace(0, len(px) - 1, k).astype(int)]]
    labels = np.zeros(len(px), int)
    for _ in range(iterations):
        d = ((lab[:, None, :] - centres[None]) ** 2).sum(axis=-1)
        labels = d.argmin(axis=1)
        for j in range(k):
            members = lab[labels == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    keep = counts > 0
    rgb = np.array([px[labels == j].mean(axis=0) for j in range(k) if keep[j]])
    return rgb, counts[keep] / counts.sum()
