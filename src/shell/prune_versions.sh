# Removes the version directories (ROOT/RELEASE/VERSION) of the releases named in the kept list
# that the list does not keep: the versions the host's links point at and the one a rollback
# would return to stay. A release the list does not name is left alone. Prints each removed.
# Positional parameters: ROOT, then RELEASE/VERSION to keep...
set -e
root=$1
shift
for dir in "$root"/*/*; do
    [ -d "$dir" ] || continue
    rv=${dir#"$root"/}
    managed=no
    keep=no
    for k; do
        if [ "${k%%/*}" = "${rv%%/*}" ]; then managed=yes; fi
        if [ "$k" = "$rv" ]; then keep=yes; fi
    done
    if [ "$managed" = yes ] && [ "$keep" = no ]; then
        rm -rf -- "$dir"
        echo "removed $rv"
    fi
done
