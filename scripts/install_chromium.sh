#!/usr/bin/env bash
# Headless Chromium (Debian's package, no browser download) and the fonts the dashboard's
# screenshots need: CJK for Chinese service and department names, colour emoji for the
# status markers; poppler-utils (pdftoppm, pdftotext) to read the scorecard PDFs back in
# tests as a person would. Idempotent; run as root (CI and the dev machines are root).
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s fonts-noto-cjk >/dev/null 2>&1 || need+=(fonts-noto-cjk)
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || need+=(fonts-noto-color-emoji)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
if [ ${#need[@]} -gt 0 ]; then
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      as_root=(sudo)
    else
      echo "install_chromium.sh: ${need[*]} missing and apt-get needs root: as root run" \
           "'apt-get install -y ${need[*]}', then run make again" >&2
      exit 2
    fi
  fi
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
chromium --version 2>/dev/null  # its launcher script prints a harmless shell warning on stderr
