# Replaces the lease file $1 by the line $2, only if it still holds exactly $3 (empty: no lease).
# On a mismatch, prints what it holds and exits 3. flock keeps two takers from interleaving.
# Positional parameters: PATH NEW EXPECTED ("" as NEW removes the lease).
path=$1 new=$2 expected=$3
# Nothing to give back where the directory is gone (a reset host): recreating it would leave a
# file on a host that was just cleaned.
if [ -z "$new" ] && [ ! -d "$(dirname "$path")" ]; then
    exit 0
fi
install -d -m 700 "$(dirname "$path")"
exec 9>"$path.flock"
flock -w 10 9 || { echo "the lease is being taken by another run" >&2; exit 4; }
current=$(cat "$path" 2>/dev/null)
if [ "$current" != "$expected" ]; then
    printf '%s\n' "$current"
    exit 3
fi
if [ -z "$new" ]; then
    rm -f "$path"
else
    printf '%s\n' "$new" >"$path.tmp" && mv -f "$path.tmp" "$path"
fi
