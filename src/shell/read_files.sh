# Prints each file named in the positional parameters, framed so any content survives:
#   SIZE PATH\n<SIZE bytes>    for a regular file
#   - PATH                     for a missing one
export LC_ALL=C
for f in "$@"; do
    if [ -f "$f" ]; then
        printf '%s %s\n' "$(wc -c <"$f" | tr -d ' ')" "$f"
        cat "$f"
    else
        printf -- '- %s\n' "$f"
    fi
done
