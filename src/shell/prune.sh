# Keeps the newest KEEP files of DIR whose names start with PREFIX (their names sort by time)
# and removes the others. Positional parameters: DIR PREFIX KEEP.
export LC_ALL=C
dir=$1 prefix=$2 keep=$3
set -- "$dir/$prefix"*
[ -e "$1" ] || exit 0
drop=$(($# - keep))
for f; do
    [ "$drop" -gt 0 ] || break
    rm -f -- "$f"
    drop=$((drop - 1))
done
