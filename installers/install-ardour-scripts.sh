#!/bin/sh
# Put Studio Bridge's Ardour Lua scripts (hosts/ardour, rendered by its install.py) in Ardour's user scripts
# folder, for each Ardour you have set up (7 and/or 8; both when neither is yet):
#   Linux   ~/.config/ardour7/scripts, ~/.config/ardour8/scripts   ($XDG_CONFIG_HOME honoured)
#   macOS   ~/Library/Preferences/Ardour7/scripts, ~/Library/Preferences/Ardour8/scripts
#   Windows %LOCALAPPDATA%\Ardour7\scripts, %LOCALAPPDATA%\Ardour8\scripts   (use install-ardour-scripts.ps1)
#
#   installers/install-ardour-scripts.sh              install or update
#   installers/install-ardour-scripts.sh --dest DIR   into DIR instead (one scripts folder)
#   installers/install-ardour-scripts.sh --uninstall  remove what this installed
#   --port N  the relay's UDP port baked into the scripts (default: the relay's)
#   --force   also replace (or, with --uninstall, remove) copies you have changed
#
# Safe to run again: unchanged files are left alone. A copy you have edited is never
# replaced without --force (what was installed is recorded, with checksums, in
# .studio-bridge-installed in each scripts folder).
set -eu

NAME=install-ardour-scripts.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)  # the checkout
SOURCE="$ROOT/hosts/ardour"
DEST=""
FORCE=0
UNINSTALL=0
PORT=""

die() { echo "$NAME: $*" >&2; exit 2; }
say() { echo "$NAME: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dest) [ $# -ge 2 ] || die "--dest needs a folder"; DEST=$2; shift 2 ;;
        --dest=*) DEST=${1#--dest=}; shift ;;
        --port) [ $# -ge 2 ] || die "--port needs a number"; PORT=$2; shift 2 ;;
        --port=*) PORT=${1#--port=}; shift ;;
        --force) FORCE=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) die "unknown option '$1' (use --dest DIR, --port N, --force, --uninstall)" ;;
    esac
done

# Ardour's per-version config folders, one a line (the scripts folder is <folder>/scripts).
ardour_config_dirs() {
    case "$(uname -s)" in
        Darwin) base="$HOME/Library/Preferences"; names="Ardour7 Ardour8" ;;
        MINGW*|MSYS*|CYGWIN*) die "on Windows run installers\\install-ardour-scripts.ps1 (PowerShell)" ;;
        *) base="${XDG_CONFIG_HOME:-$HOME/.config}"; names="ardour7 ardour8" ;;
    esac
    found=""
    for n in $names; do
        if [ -d "$base/$n" ]; then found="$found $n"; fi
    done
    # Neither set up yet: both, so whichever Ardour starts first finds them.
    [ -n "$found" ] || found=$names
    for n in $found; do echo "$base/$n"; done
}

# -- shared by the host-script installers: copy with a manifest of checksums ----------
MANIFEST_NAME=.studio-bridge-installed
TMP=$(mktemp -d "${TMPDIR:-/tmp}/studio-bridge-install.XXXXXX")
STAGE="$TMP/stage"  # the files as installed
mkdir "$STAGE"
trap 'rm -rf "$TMP"' EXIT INT TERM

# checksum, install_into, uninstall_from: shared with the other DAW installer.
. "$ROOT/installers/lib/manifest.sh"

# -- Ardour --------------------------------------------------------------------------
if [ -n "$DEST" ]; then
    printf '%s\n' "$DEST" > "$TMP/dests"
else
    ardour_config_dirs | sed 's|$|/scripts|' > "$TMP/dests"
fi

if [ "$UNINSTALL" = 1 ]; then
    while IFS= read -r d; do uninstall_from "$d"; done < "$TMP/dests"
    exit 0
fi

[ -f "$SOURCE/install.py" ] || die "no Ardour scripts at $SOURCE (run this from a Studio Bridge checkout)"
# The scripts are templates (hosts/ardour/lua/) that hosts/ardour/install.py renders:
# shared code and the relay's port baked into each, since Ardour gives every script
# its own Lua state.
PY=${PYTHON:-}
[ -n "$PY" ] || { [ -x "$ROOT/.venv/bin/python" ] && PY="$ROOT/.venv/bin/python"; } || PY=python3
"$PY" - "$ROOT" "$TMP/render" "$PORT" > "$TMP/rendered" <<'PYEOF' || die "could not render the scripts with $PY (set PYTHON=)"
import sys
from pathlib import Path

root, out, port = sys.argv[1:4]
sys.path.insert(0, root)
from hosts.ardour.install import DEFAULT_PORT, install

for path in install(Path(out), int(port) if port else DEFAULT_PORT):
    print(path.name)
PYEOF
LC_ALL=C sort "$TMP/rendered" > "$TMP/files"
[ -s "$TMP/files" ] || die "no Ardour scripts were rendered from $SOURCE"
mv "$TMP/render/scripts"/* "$STAGE"/

while IFS= read -r d; do install_into "$d"; done < "$TMP/dests"

echo
echo "Ardour scripts are in:"
sed 's/^/  /' "$TMP/dests"
cat <<EOF
To use them (restart Ardour if it is running: it reads the folder when it starts):
  Edit > Lua Scripts > Script Manager > Action Scripts: select a free slot, "Add/Set",
  and pick a "Studio Bridge" action (Separate, Generate, Continue, Master); on the
  Editor Hooks tab add "Studio Bridge: Collect Results", which brings finished results in.
  Actions get an editor toolbar button and can take a shortcut (Window > Keyboard Shortcuts).
  Lua scripts must be allowed io/os: untick "Sandbox all Lua scripts" (Preferences > General)
  if it is ticked.
Installed:
EOF
sed 's/^/  /' "$TMP/files"
echo "The scripts need the daemon and the relay running:"
echo "  studio-bridge serve            (or \`studio-bridge service install\` once, to start it at login)"
echo "  $ROOT/.venv/bin/python -m hosts.ardour.relay${PORT:+ --port $PORT}"
