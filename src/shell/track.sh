# Adds to the record of what provisioner installed on this host, which `reset` removes: each
# file about to be written, and each directory about to be created (a path's missing parents
# too). Runs before anything is written, so a run stopped halfway leaves nothing unrecorded; a
# directory that was already there is not recorded, and stays.
# Positional parameters: the record, then pairs of KIND PATH, KIND being "file" or "dir".
set -e
record=$1
shift
install -d -m 700 "${record%/*}"
tmp=$record.tmp
{
    if [ -f "$record" ]; then
        cat "$record"
    fi
    while [ $# -ge 2 ]; do
        p=$2
        if [ "$1" = file ]; then
            printf 'file %s\n' "$p"
            p=${p%/*}
        fi
        while [ -n "$p" ] && [ ! -e "$p" ]; do
            printf 'dir %s\n' "$p"
            p=${p%/*}
        done
        shift 2
    done
} | LC_ALL=C sort -u >"$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$record"
