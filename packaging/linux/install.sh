#!/bin/sh
# Install Llamadesk's bundle for the current user, in the standard (XDG) places, or remove it.
#
#     packaging/linux/install.sh [--bundle DIR]     # install (or update) dist/llamadesk
#     packaging/linux/install.sh --uninstall        # remove exactly what install put there
#
# Installs, with DATA=${XDG_DATA_HOME:-~/.local/share} and BIN=${XDG_BIN_HOME:-~/.local/bin}:
#   DATA/llamadesk/                       the bundle (a copy of dist/llamadesk/)
#   BIN/llamadesk                         a link to DATA/llamadesk/llamadesk (the command)
#   DATA/applications/llamadesk.desktop   the menu entry (Exec= names the installed program)
#   DATA/icons/hicolor/*/apps/llamadesk.{png,svg}
#   DATA/mime/packages/llamadesk-gguf.xml the GGUF file type, so a double-click on *.gguf opens
#                                         it in Llamadesk
# and refreshes the MIME, desktop and icon caches with update-mime-database,
# update-desktop-database and gtk-update-icon-cache when they are installed (they are optional).
# What was written is listed in DATA/llamadesk/.install-manifest; --uninstall removes those
# files and nothing else. Conversations, settings and models (DATA/Llamadesk, ~/.config/Llamadesk,
# ~/.cache/Llamadesk) are never touched.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
BIN=${XDG_BIN_HOME:-$HOME/.local/bin}
APP_DIR=$DATA/llamadesk
MANIFEST=$APP_DIR/.install-manifest
MARK="# Llamadesk install manifest"
BUNDLE=
ACTION=install

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case $1 in
        --uninstall) ACTION=uninstall ;;
        --bundle) [ $# -ge 2 ] || { usage >&2; exit 2; }; BUNDLE=$2; shift ;;
        --bundle=*) BUNDLE=${1#--bundle=} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

have() { command -v "$1" >/dev/null 2>&1; }

refresh_caches() {
    if [ -d "$DATA/mime/packages" ] && have update-mime-database; then
        update-mime-database "$DATA/mime" >/dev/null 2>&1 || echo "note: update-mime-database failed" >&2
    fi
    if [ -d "$DATA/applications" ] && have update-desktop-database; then
        update-desktop-database -q "$DATA/applications" 2>/dev/null || true
    fi
    if [ -d "$DATA/icons/hicolor" ]; then
        touch "$DATA/icons/hicolor"  # a newer folder makes GTK re-read a stale icon cache
        if [ -f "$DATA/icons/hicolor/icon-theme.cache" ] && have gtk-update-icon-cache; then
            gtk-update-icon-cache -q -f -t "$DATA/icons/hicolor" 2>/dev/null || true
        fi
    fi
}

# Remove the files a previous install listed, then the folders that leaves empty.
remove_listed() {
    [ -f "$MANIFEST" ] || return 0
    if [ "$(head -n 1 "$MANIFEST")" != "$MARK" ]; then
        echo "install.sh: $MANIFEST is not Llamadesk's install manifest; nothing removed" >&2
        exit 1
    fi
    tail -n +2 "$MANIFEST" | while IFS= read -r path; do
        case $path in
            "$DATA"/*|"$BIN"/*)
                if [ -L "$path" ] || [ -f "$path" ]; then rm -f "$path"; fi
                dir=$(dirname "$path")
                # Empty folders go, up to the standard ones (kept: their caches are refreshed below).
                while :; do
                    case $dir in
                        "$DATA"|"$BIN"|/|"$DATA/applications"|"$DATA/mime/packages"|"$DATA/icons/hicolor") break ;;
                    esac
                    rmdir "$dir" 2>/dev/null || break
                    dir=$(dirname "$dir")
                done ;;
            *) echo "install.sh: skipping $path (outside $DATA and $BIN)" >&2 ;;
        esac
    done
}

remove_bundle() {
    # The bundle folder goes only when it is ours (it holds the manifest, or it is empty).
    if [ -d "$APP_DIR" ]; then
        if [ -f "$MANIFEST" ]; then
            rm -rf "$APP_DIR"
        else
            rmdir "$APP_DIR" 2>/dev/null || {
                echo "install.sh: $APP_DIR exists and was not installed by this script; leaving it" >&2
                exit 1
            }
        fi
    fi
}

if [ "$ACTION" = uninstall ]; then
    if [ ! -f "$MANIFEST" ]; then
        echo "Llamadesk is not installed in $APP_DIR (no install manifest); nothing to remove."
        exit 0
    fi
    remove_listed
    remove_bundle
    refresh_caches
    echo "Llamadesk removed (your conversations and models are kept)."
    exit 0
fi

# ---------------------------------------------------------------- install
if [ -z "$BUNDLE" ]; then
    if [ -x "$HERE/llamadesk/llamadesk" ]; then BUNDLE=$HERE/llamadesk; else BUNDLE=$REPO/dist/llamadesk; fi
fi
BUNDLE=$(cd "$BUNDLE" 2>/dev/null && pwd) || { echo "install.sh: no bundle folder $BUNDLE" >&2; exit 1; }
if [ ! -x "$BUNDLE/llamadesk" ]; then
    echo "install.sh: $BUNDLE/llamadesk is missing: build the bundle first with" >&2
    echo "    .venv/bin/python packaging/build_bundle.py" >&2
    exit 1
fi
ICONS=$REPO/resources/icons
[ -d "$ICONS/hicolor" ] || ICONS=$BUNDLE/_internal/resources/icons  # the bundle carries the PNGs
DESKTOP_SRC=$HERE/llamadesk.desktop
MIME_SRC=$HERE/llamadesk-gguf.xml
for f in "$DESKTOP_SRC" "$MIME_SRC"; do
    [ -f "$f" ] || { echo "install.sh: missing $f" >&2; exit 1; }
done
case $APP_DIR in
    *[\"\`\$\\]*) echo "install.sh: cannot write a desktop entry for a path with \" \` \$ or \\: $APP_DIR" >&2
        exit 1 ;;
esac
if [ -e "$APP_DIR" ] && [ ! -f "$MANIFEST" ] && [ -n "$(ls -A "$APP_DIR" 2>/dev/null)" ]; then
    echo "install.sh: $APP_DIR exists and was not installed by this script; move it away first" >&2
    exit 1
fi

# Copy the new bundle beside the old one, then swap, so a failed copy leaves the old install.
mkdir -p "$DATA"
STAGE=$DATA/.llamadesk-install.$$
trap 'rm -rf "$STAGE"' EXIT INT TERM
rm -rf "$STAGE"
cp -a "$BUNDLE" "$STAGE"
remove_listed
remove_bundle
mv "$STAGE" "$APP_DIR"
trap - EXIT INT TERM

LIST=$(mktemp)
trap 'rm -f "$LIST"' EXIT
put() {  # put SRC DEST: copy one file and list it
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2"
    chmod 644 "$2"
    echo "$2" >>"$LIST"
}

mkdir -p "$BIN"
ln -sfn "$APP_DIR/llamadesk" "$BIN/llamadesk"
echo "$BIN/llamadesk" >>"$LIST"

mkdir -p "$DATA/applications"
SED_DIR=$(printf '%s' "$APP_DIR" | sed 's/[&|]/\\&/g')  # & and | are special in the s||| below
sed -e "s|^Exec=.*|Exec=\"$SED_DIR/llamadesk\" %f|" -e "s|^TryExec=.*|TryExec=$SED_DIR/llamadesk|" \
    "$DESKTOP_SRC" >"$DATA/applications/llamadesk.desktop"
chmod 644 "$DATA/applications/llamadesk.desktop"
echo "$DATA/applications/llamadesk.desktop" >>"$LIST"

for png in "$ICONS"/hicolor/*/apps/llamadesk.png; do
    size=$(basename "$(dirname "$(dirname "$png")")")
    put "$png" "$DATA/icons/hicolor/$size/apps/llamadesk.png"
done
if [ -f "$ICONS/llamadesk.svg" ]; then
    put "$ICONS/llamadesk.svg" "$DATA/icons/hicolor/scalable/apps/llamadesk.svg"
fi

put "$MIME_SRC" "$DATA/mime/packages/llamadesk-gguf.xml"

{ echo "$MARK"; cat "$LIST"; } >"$MANIFEST"
refresh_caches

echo "Llamadesk installed in $APP_DIR"
echo "  command:    $BIN/llamadesk"
echo "  menu entry: $DATA/applications/llamadesk.desktop"
case ":$PATH:" in
    *":$BIN:"*) ;;
    *) echo "note: $BIN is not on your PATH; the menu entry works anyway." ;;
esac
