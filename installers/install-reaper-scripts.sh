#!/bin/sh
# Put Studio Bridge's REAPER actions (hosts/reaper/scripts/*.py) where REAPER finds them:
# <resource path>/Scripts/StudioBridge/, the resource path being
#   Linux   ~/.config/REAPER   ($XDG_CONFIG_HOME/REAPER when that exists)
#   macOS   ~/Library/Application Support/REAPER
#   Windows %APPDATA%\REAPER   (use install-reaper-scripts.ps1)
#
#   installers/install-reaper-scripts.sh              install or update
#   installers/install-reaper-scripts.sh --dest DIR   into DIR instead (a portable REAPER: <REAPER>/Scripts/StudioBridge)
#   installers/install-reaper-scripts.sh --uninstall  remove what this installed
#   --force   also replace (or, with --uninstall, remove) copies you have changed
#
# The copies import their modules from this checkout (its path is written into each).
# Safe to run again: unchanged files are left alone. A copy you have edited is never
# replaced without --force (what was installed is recorded, with checksums, in
# .studio-bridge-installed in the destination).
set -eu

NAME=install-reaper-scripts.sh
ROOT=$(cd "$(dirname "$0")/.." && pwd)  # the checkout
SOURCE="$ROOT/hosts/reaper"
DEST=""
FORCE=0
UNINSTALL=0

die() { echo "$NAME: $*" >&2; exit 2; }
say() { echo "$NAME: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --dest) [ $# -ge 2 ] || die "--dest needs a folder"; DEST=$2; shift 2 ;;
        --dest=*) DEST=${1#--dest=}; shift ;;
        --force) FORCE=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) die "unknown option '$1' (use --dest DIR, --force, --uninstall)" ;;
    esac
done

reaper_resource_path() {
    case "$(uname -s)" in
        Darwin) echo "$HOME/Library/Application Support/REAPER" ;;
        MINGW*|MSYS*|CYGWIN*) die "on Windows run installers\\install-reaper-scripts.ps1 (PowerShell)" ;;
        *)
            if [ -n "${XDG_CONFIG_HOME:-}" ] && [ -d "$XDG_CONFIG_HOME/REAPER" ]; then
                echo "$XDG_CONFIG_HOME/REAPER"
            else
                echo "$HOME/.config/REAPER"
            fi ;;
    esac
}

# -- shared by the host-script installers: copy with a manifest of checksums ----------
MANIFEST_NAME=.studio-bridge-installed
TMP=$(mktemp -d "${TMPDIR:-/tmp}/studio-bridge-install.XXXXXX")
STAGE="$TMP/stage"  # the files as installed
mkdir "$STAGE"
trap 'rm -rf "$TMP"' EXIT INT TERM

# checksum, install_into, uninstall_from: shared with the other DAW installer.
. "$ROOT/installers/lib/manifest.sh"

# -- REAPER --------------------------------------------------------------------------
[ -n "$DEST" ] || DEST="$(reaper_resource_path)/Scripts/StudioBridge"

if [ "$UNINSTALL" = 1 ]; then
    uninstall_from "$DEST"
    rmdir "$DEST" 2>/dev/null || true
    exit 0
fi

[ -d "$SOURCE/scripts" ] || die "no REAPER scripts at $SOURCE/scripts (run this from a Studio Bridge checkout)"
( cd "$SOURCE/scripts" && find . -type f -name '*.py' ! -path './*/*' ) | sed 's|^\./||' | LC_ALL=C sort > "$TMP/files"
[ -s "$TMP/files" ] || die "no *.py scripts in $SOURCE/scripts"
# Each action imports its modules (hosts.reaper.*) from this checkout: the copy gets
# the checkout's path in its STUDIO_BRIDGE_ROOT line (as a Python string literal).
ROOT_LITERAL=$(printf '%s' "$ROOT" | sed 's/\\/\\\\/g; s/"/\\"/g')
export ROOT_LITERAL
while IFS= read -r rel; do
    grep -q '^STUDIO_BRIDGE_ROOT = ""' "$SOURCE/scripts/$rel" ||
        say "warning: $rel has no 'STUDIO_BRIDGE_ROOT = \"\"' line; its copy may not find the checkout"
    awk '/^STUDIO_BRIDGE_ROOT = ""/ { print "STUDIO_BRIDGE_ROOT = \"" ENVIRON["ROOT_LITERAL"] "\"  # the checkout this was installed from"; next }
         { print }' "$SOURCE/scripts/$rel" > "$STAGE/$rel"
done < "$TMP/files"

install_into "$DEST"

cat <<EOF

REAPER scripts are in: $DEST (they use the checkout at $ROOT)
To add them to REAPER:
  1. Options > Preferences > Plug-ins > ReaScript: tick "Enable Python for use with ReaScript"
     (set the Python library path if REAPER does not find one).
  2. Actions > Show action list... > New action... > Load ReaScript..., and choose these
     (several at once is fine):
EOF
sed 's/^/       /' "$TMP/files"
cat <<EOF
  3. Give them a shortcut or a toolbar button from the Action List.
The scripts need the daemon: keep \`studio-bridge serve\` running (or run
\`studio-bridge service install\` once to start it at login).
EOF
