# Prints "SHA256 MODE UID GID" of the file $1, or "-" when it does not exist.
p=$1
if [ -e "$p" ] || [ -L "$p" ]; then
    h=$(sha256sum <"$p") || exit 1
    echo "${h%% *} $(stat -c '%a %u %g' "$p")"
else
    echo -
fi
