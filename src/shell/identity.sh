# Prints the cluster identity this host carries, and no secret.
# Positional parameters: the encryption config, whose keys are printed as hashes only, then the
# public identity files (CA certificates, sa.pub).
#   pem PATH LINE    each line of each public identity file present
#   enc SHA256       sha256 of the text of each encryption key
export LC_ALL=C
enc=$1
shift
for f in "$@"; do
    [ -f "$f" ] || continue
    while IFS= read -r line || [ -n "$line" ]; do
        printf 'pem %s %s\n' "$f" "$line"
    done <"$f"
done
if [ -f "$enc" ]; then
    sed -n 's/^[[:space:]]*secret:[[:space:]]*//p' "$enc" | while IFS= read -r s; do
        printf 'enc %s\n' "$(printf '%s' "$s" | sha256sum | cut -d' ' -f1)"
    done
fi
true
