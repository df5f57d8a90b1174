# Prints the sha256 of each file in the positional parameters, one line each; "-" when missing.
for p; do
    if [ -e "$p" ] || [ -L "$p" ]; then
        h=$(sha256sum <"$p") || exit 1
        echo "${h%% *}"
    else
        echo -
    fi
done
