# Receives a file on stdin into a temporary file beside its target, checks its sha256, sets owner
# and mode, then renames it over the target: readers never see a partial file.
# Positional parameters: DIR TMP TARGET SHA256 MODE.
set -e
dir=$1 tmp=$2 dst=$3 want=$4 mode=$5
if [ -d "$dst" ] && [ ! -L "$dst" ]; then
    echo "$dst is a directory" >&2
    exit 4
fi
[ -d "$dir" ] || install -d -m 0755 "$dir"
trap 'rm -f "$tmp"' EXIT
rm -f "$tmp"
(umask 077 && cat >"$tmp")
got=$(sha256sum <"$tmp")
got=${got%% *}
if [ "$got" != "$want" ]; then
    echo "checksum mismatch: sent $want, the host received $got" >&2
    exit 3
fi
chown 0:0 "$tmp"
chmod "$mode" "$tmp"
mv -f "$tmp" "$dst"
