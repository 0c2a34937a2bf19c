#!/usr/bin/env bash
# Real data that Debian packages carry (see DATA.md): fonts for the glyph set, Fashion-MNIST.
# Best effort: without root or apt-get, paperzoo falls back to the data that ships in Python wheels.
set -u
pkgs="fonts-noto-core fonts-unifont dataset-fashion-mnist espeak-ng"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "paperzoo: optional data packages not installed:$missing (run as root: apt-get install$missing)"
  exit 0
fi
echo "paperzoo: installing optional data packages:$missing"
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null) \
  || echo "paperzoo: apt-get failed; continuing with the data that ships in Python wheels"
exit 0
