# Prints the certificate of each file in the positional parameters after a "==> PATH" line:
# .crt files whole, kubeconfigs only their client-certificate-data line, so no private key leaves
# the host; "MISSING" for a file that is not there.
for f; do
    echo "==> $f"
    if [ ! -f "$f" ]; then
        echo MISSING
    elif [ "${f%.crt}" != "$f" ]; then
        cat "$f"
    else
        sed -n 's/^ *client-certificate-data: *//p' "$f"
    fi
done
