# Sourced by installers/install-*-scripts.sh: installing files under a manifest of checksums
# (.studio-bridge-installed), so a second run changes nothing, a copy the user edited is
# kept unless --force, and --uninstall removes only what was installed.
# Uses the caller's MANIFEST_NAME, TMP (a scratch folder; $TMP/files lists the relative
# paths to install), STAGE (the files as installed), FORCE (0/1) and say().

checksum() { cksum < "$1" | awk '{print $1 " " $2}'; }

# The checksum this installer recorded for a file (relative path $2) in manifest $1.
recorded() {
    [ -f "$1" ] || return 0
    while read -r sum size path; do
        if [ "$path" = "$2" ]; then echo "$sum $size"; return 0; fi
    done < "$1"
}

# Copy every file listed in $TMP/files from $STAGE into $1, keeping edited copies.
install_into() {
    dest=$1
    manifest="$dest/$MANIFEST_NAME"
    : > "$TMP/manifest"
    changed=0
    while IFS= read -r rel; do
        src="$STAGE/$rel"
        dst="$dest/$rel"
        new=$(checksum "$src")
        if [ -f "$dst" ]; then
            cur=$(checksum "$dst")
            old=$(recorded "$manifest" "$rel")
            if [ "$cur" = "$new" ]; then
                echo "$new $rel" >> "$TMP/manifest"
                continue
            fi
            if [ "$cur" != "$old" ] && [ "$FORCE" = 0 ]; then
                say "kept your changed $dst (--force replaces it)"
                [ -z "$old" ] || echo "$old $rel" >> "$TMP/manifest"
                continue
            fi
            say "updated $dst"
        else
            say "installed $dst"
        fi
        mkdir -p "$(dirname "$dst")"
        cp "$src" "$dst.sb-tmp.$$"
        mv -f "$dst.sb-tmp.$$" "$dst"
        echo "$new $rel" >> "$TMP/manifest"
        changed=1
    done < "$TMP/files"
    # Files an earlier version installed that the checkout no longer has.
    if [ -f "$manifest" ]; then
        while read -r sum size rel; do
            grep -Fxq -- "$rel" "$TMP/files" && continue
            dst="$dest/$rel"
            if [ -f "$dst" ] && [ "$(checksum "$dst")" != "$sum $size" ] && [ "$FORCE" = 0 ]; then
                say "kept your changed $dst (no longer shipped; --force removes it)"
                echo "$sum $size $rel" >> "$TMP/manifest"
            elif [ -f "$dst" ]; then
                rm -f "$dst"
                say "removed $dst (no longer shipped)"
                changed=1
            fi
        done < "$manifest"
    fi
    if ! [ -f "$manifest" ] || ! cmp -s "$TMP/manifest" "$manifest"; then
        mkdir -p "$dest"
        cp "$TMP/manifest" "$manifest.sb-tmp.$$"
        mv -f "$manifest.sb-tmp.$$" "$manifest"
    fi
    [ "$changed" = 1 ] || say "up to date: $dest"
}

# Remove what install_into put in $1 (edited copies stay unless --force).
uninstall_from() {
    dest=$1
    manifest="$dest/$MANIFEST_NAME"
    if ! [ -f "$manifest" ]; then
        say "nothing of Studio Bridge's in $dest"
        return 0
    fi
    while read -r sum size rel; do
        dst="$dest/$rel"
        [ -f "$dst" ] || continue
        if [ "$(checksum "$dst")" = "$sum $size" ] || [ "$FORCE" = 1 ]; then
            rm -f "$dst"
            say "removed $dst"
            # Folders this created for the file, if now empty.
            dir=$(dirname "$rel")
            while [ "$dir" != "." ] && rmdir "$dest/$dir" 2>/dev/null; do dir=$(dirname "$dir"); done
        else
            say "kept your changed $dst (--force removes it)"
        fi
    done < "$manifest"
    rm -f "$manifest"
}
