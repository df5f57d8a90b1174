# Prints the certificate of each file in the positional parameters after a "==> PATH" line:
# .crt files whole, kubeconfigs only their client-certificate-data line, .pem pairs only their
# certificate blocks, so no private key leaves the host; "MISSING" for a file that is not there.
for f; do
    echo "==> $f"
    if [ ! -f "$f" ]; then
        echo MISSING
    elif [ "${f%.crt}" != "$f" ]; then
        cat "$f"
    elif [ "${f%.pem}" != "$f" ]; then
        sed -n '/^-----BEGIN CERTIFICATE-----$/,/^-----END CERTIFICATE-----$/p' "$f"
    else
        sed -n 's/^ *client-certificate-data: *//p' "$f"
    fi
done
