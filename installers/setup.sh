#!/usr/bin/env bash
# Studio Bridge set-up on a fresh Debian 12 (or Ubuntu) machine, in one command.
#
#   installers/setup.sh          system packages, .venv, studio-bridge + its engines + demo
#   installers/setup.sh --dev    ... plus the test tools (pytest, grpcurl, music21)
#
# Safe to run again: it installs only what is missing.
set -euo pipefail

cd "$(dirname "$0")/.."
DEV=0
APT=1
for arg in "$@"; do
    case "$arg" in
        --dev) DEV=1 ;;
        --no-apt) APT=0 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "setup.sh: unknown option '$arg' (use --dev, --no-apt)" >&2; exit 2 ;;
    esac
done

# What each system package is for:
#   ffmpeg            decoding MP3/M4A, reference loudness meter in tests, video engines
#   libsndfile1       WAV/FLAC/AIFF/OGG/MP3 reading and writing (soundfile)
#   liblo-tools       oscsend/oscdump: real OSC peers (tests, and handy for users)
#   fluidsynth, fluid-soundfont-gm   rendering real music for tests and benchmarks
#   melt              MLT's renderer: opens Kdenlive projects headless (tests of the OTIO host)
#   jackd2            JACK (dummy backend): the live adapter's and MIDI host's tests, jack_rec,
#                     jack_midiseq; libasound2 comes with it (python-rtmidi needs it)
#   ardour, xvfb, xdotool   the real Ardour GUI in a virtual X server (tests of the Ardour host)
#   libasound2, libjack-jackd2-0   what python-rtmidi (midi extra) and JACK-Client (live
#                     extra) load when `studio-bridge midi` / `live` start
APT_PACKAGES=(ffmpeg libsndfile1 liblo-tools libasound2 libjack-jackd2-0)
if [ "$DEV" = 1 ]; then
    APT_PACKAGES+=(fluidsynth fluid-soundfont-gm melt jackd2 ardour xvfb xdotool)
fi

PYTHON="${PYTHON:-python3}"
# Debian's own python3 needs python3-venv for `python3 -m venv` (ensurepip).
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    APT_PACKAGES+=(python3-venv)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "$APT" = 1 ] && [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "setup.sh: installing ${missing[*]}" >&2
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup.sh: Python 3.11 or newer is needed (found $("$PYTHON" --version)); set PYTHON=" >&2
    exit 1
}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip

# torch is pinned: 2.13.0 is the CPU build that lies on this kind of machine's
# disk; an unpinned torch (asked for by any model extra) would download a
# multi-GB CUDA build. Installing it first makes later extras reuse it.
"${PIP[@]}" install torch==2.13.0

EXTRAS="master,separate,generate,reframe,demo,live,midi"
[ "$DEV" = 1 ] && EXTRAS="$EXTRAS,dev"
"${PIP[@]}" install -c installers/constraints.txt -e ".[${EXTRAS}]"

# audiocraft 1.3.0's metadata pins torch 2.1, xformers<0.0.23 and av 11 (an old
# CUDA torch and a source build of av); its real needs on current torch are the
# `generate` extra above. So audiocraft itself goes in without its pins.
# `studio-bridge doctor` checks that it imports.
"${PIP[@]}" install -c installers/constraints.txt --no-deps audiocraft==1.3.0

# PySceneDetect's package requires opencv-python-headless, a second cv2 that would
# overwrite the contrib build (see installers/constraints.txt); its other needs are
# in the `reframe` extra.
"${PIP[@]}" install -c installers/constraints.txt --no-deps scenedetect-headless==0.7.2

echo "setup.sh: ready: $(.venv/bin/studio-bridge --version 2>/dev/null || echo studio-bridge) in .venv" >&2
