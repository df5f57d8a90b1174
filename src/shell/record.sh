# Records "SHA256 SIZE MTIME CTIME INODE PATH" for each file just written or checked, so that a
# later survey hashes only files whose size, mtime (ns), ctime (ns) or inode changed: any write,
# touch -d, chmod or replacement changes one of them.
# Positional parameters: the record file, then pairs of SHA256 PATH.
record=$1
shift
install -d -m 700 "$(dirname "$record")"
tmp=$record.tmp
: >"$tmp"
while [ $# -ge 2 ]; do
    st=$(stat -c '%s %.9Y %.9Z %i' -- "$2") && printf '%s %s %s\n' "$1" "$st" "$2" >>"$tmp"
    shift 2
done
mv -f "$tmp" "$record"
