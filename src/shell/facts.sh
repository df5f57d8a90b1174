# Prints one key=value line per fact of this host, read by plan::facts::parse.
# Positional parameters: the record of known file hashes (empty: hash every file again), the
# record of follow-up work an apply left undone ("follow-up=LINE"), then sections, each opened by
# a marker:
#   --files PATH...   managed files: "file=SHA256 MODE UID:GID PATH" (hashed only when the
#                     record's size, mtime, ctime and inode no longer match)
#   --dirs PATH...    managed directories: "dir=MODE PATH"
#   --links PATH...   managed symbolic links that exist: "link=TARGET PATH"
#   --units UNIT...   systemd units, by file name: "unit=NAME ACTIVESTATE UNITFILESTATE" (NAME without .service or .timer)
#   --owned DIR...    directories provisioner owns: "owned=PATH" for every file below them
#   --images yes      containerd's images in the k8s.io namespace: "image=DIGEST REFERENCE"
export LC_ALL=C
record=$1
follow_up=$2
shift 2

# The parameters of one section, NUL-terminated, for xargs -0: one process per kind of fact, not
# one per file or unit (forks are most of a no-op run's time on a busy host).
section() {
    want=$1
    shift
    cur=
    for a; do
        case "$a" in
        --files | --dirs | --links | --units | --owned | --images)
            cur=$a
            continue
            ;;
        esac
        if [ "$cur" = "$want" ]; then printf '%s\0' "$a"; fi
    done
}

# shellcheck source=/dev/null
. /etc/os-release 2>/dev/null
echo "os=$ID $VERSION_ID"
echo "arch=$(uname -m)"
echo "hostname=$(hostname)"
echo "time=$(date +%s)"
echo "systemd=$(systemctl --version 2>/dev/null | head -n1 | cut -d' ' -f2)"
echo "cgroup=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
echo "swap=$(tail -n +2 /proc/swaps 2>/dev/null | wc -l)"
for t in conntrack socat ipset iptables nft; do
    command -v "$t" >/dev/null 2>&1 && echo "tool=$t"
done
if command -v ss >/dev/null 2>&1; then
    ss -Htln | while read -r _ _ _ local _; do echo "listen=${local##*:}"; done
fi
{
    if [ -n "$record" ]; then sed 's/^/R /' "$record" 2>/dev/null; fi
    section --files "$@" | xargs -0 -r stat -c 'S %s %.9Y %.9Z %i %a %u:%g %n' -- 2>/dev/null
} | awk '
  function rest(n,  s, i) { s = $0; for (i = 0; i < n; i++) sub(/^[^ ]+ /, "", s); return s }
  $1 == "R" { p = rest(6); sha[p] = $2; st[p] = $3 " " $4 " " $5 " " $6; next }
  $1 == "S" { p = rest(7)
              if (st[p] == $2 " " $3 " " $4 " " $5) print "file=" sha[p] " " $6 " " $7 " " p
              else print "hash=" $6 " " $7 " " p }' |
    while read -r line; do
        case "$line" in
        hash=*)
            m=${line#hash=}
            mode=${m%% *}
            m=${m#* }
            owner=${m%% *}
            f=${m#* }
            echo "file=$(sha256sum "$f" | cut -d' ' -f1) $mode $owner $f"
            ;;
        *) echo "$line" ;;
        esac
    done
section --dirs "$@" | xargs -0 -r stat -c 'dir=%a %n' -- 2>/dev/null
section --links "$@" | xargs -0 -r sh -c 'find "$@" -maxdepth 0 -type l -printf "link=%l %p\n"' sh 2>/dev/null
section --units "$@" | xargs -0 -r systemctl show -p Id -p ActiveState -p UnitFileState -- 2>/dev/null | awk '
  BEGIN { RS = ""; FS = "\n" }
  { id = ""; a = ""; e = ""
    for (i = 1; i <= NF; i++) {
      k = substr($i, 1, index($i, "=") - 1); v = substr($i, index($i, "=") + 1)
      if (k == "Id") id = v; else if (k == "ActiveState") a = v; else if (k == "UnitFileState") e = v
    }
    sub(/\.(service|timer)$/, "", id); print "unit=" id " " a " " e }'
section --owned "$@" | xargs -0 -r sh -c 'find "$@" -type f -printf "owned=%p\n"' sh 2>/dev/null
if [ -f "$follow_up" ]; then sed 's/^/follow-up=/' "$follow_up"; fi
# A hung containerd must not hang the survey: the import step finds out what is wrong.
if [ -n "$(section --images "$@")" ] && [ -S /run/containerd/containerd.sock ] &&
    command -v ctr >/dev/null 2>&1; then
    timeout 10 ctr --address /run/containerd/containerd.sock -n k8s.io images ls 2>/dev/null |
        tail -n +2 | while read -r ref _ digest _; do echo "image=$digest $ref"; done
fi
true
