#!/usr/bin/env bash
# Installs what Studio needs on a fresh Debian machine with Python 3.11. Safe to re-run:
# system packages are installed only when missing, the venv only when pyproject changed.
#   scripts/setup.sh          runtime (ffmpeg, .venv with Studio)
#   scripts/setup.sh --test   plus what the tests need (PostgreSQL server, xmllint, pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

apt_pkgs=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || apt_pkgs+=(ffmpeg)
# Disclosure writes IPTC digitalSourceType into each deliverable's XMP with exiftool.
command -v exiftool >/dev/null || apt_pkgs+=(libimage-exiftool-perl)
if [ "$mode" = "--test" ]; then
  command -v xmllint >/dev/null || apt_pkgs+=(libxml2-utils)
  # The database tests run the same code against a real PostgreSQL on loopback.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_pkgs+=(postgresql)
  # The review page is tested in a real headless browser: Debian's, driven by Playwright
  # (never `playwright install`, which downloads one).
  command -v chromium >/dev/null || apt_pkgs+=(chromium)
  # Layouts are checked by reading the rendered copy back with OCR: Debian's Tesseract,
  # with English and French (accents) trained data.
  { command -v tesseract >/dev/null && tesseract --list-langs 2>/dev/null | grep -x fra >/dev/null; } \
    || apt_pkgs+=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-fra)
  # Chinese and Japanese copy is laid out in a font with their glyphs (DejaVu has none):
  # WenQuanYi Micro Hei (Apache-2.0), 1.6 MB.
  [ -f /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || apt_pkgs+=(fonts-wqy-microhei)
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing ${apt_pkgs[*]} from Debian" >&2
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

py=${PYTHON:-}
if [ -z "$py" ]; then
  if command -v python3.11 >/dev/null; then py=python3.11; else py=python3; fi
fi
[ -x .venv/bin/python ] || "$py" -m venv .venv

extras=""; [ "$mode" = "--test" ] && extras="[test]"
want="$(sha256sum pyproject.toml | cut -c1-16)$extras"
stamp=.venv/.studio-installed
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages into .venv" >&2
  if [ "$mode" = "--test" ]; then
    # The tests run tiny diffusers pipelines on the CPU: take the CPU torch build (a file
    # on this kind of machine) before anything asks for torch, or pip fetches a CUDA one.
    .venv/bin/pip install -q "torch==2.13.0"
  fi
  .venv/bin/pip install -q -e ".$extras"
  echo "$want" > "$stamp"
fi

# Deliverables are signed (C2PA) at release. Without the organisation's certificate
# (STUDIO_SIGNING_CERT/KEY), a development identity for this machine signs them.
if [ -z "${STUDIO_SIGNING_CERT:-}" ]; then
  .venv/bin/studio keys dev >&2
fi
