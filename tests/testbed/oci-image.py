#!/usr/bin/env python3
"""Writes one container image as an OCI image layout in a tar, the form containerd imports.

    oci-image.py OUT REFERENCE CONFIG_JSON [--file IMAGE_PATH=SOURCE]... [--dir DIRECTORY]...

The --file arguments make the first layer: each source file at its path in the image, with its
parent directories (0755), mode 0755 when the source is executable and 0644 otherwise. Each
--dir makes one more layer of a whole directory tree: files, directories, symbolic and hard
links, with their modes (setuid included). CONFIG_JSON is the image config's "config" object.
Every member of every tar has mtime 0 and owner 0:0, and layers are gzipped without a
timestamp, so the same inputs give the same bytes and digests. Prints the manifest's digest.
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def sha(data):
    return hashlib.sha256(data).hexdigest()


def member(name, size=0, mode=0o644, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode = kind, size, mode
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def files_layer(files):
    """The layer of (image path, source file) pairs."""
    dirs = sorted({"/".join(p.strip("/").split("/")[:n])
                   for p, _ in files for n in range(1, len(p.strip("/").split("/")))})
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d in dirs:
            t.addfile(member(d, mode=0o755, kind=tarfile.DIRTYPE))
        for path, src in sorted(files):
            with open(src, "rb") as f:
                data = f.read()
            mode = 0o755 if os.access(src, os.X_OK) else 0o644
            t.addfile(member(path.strip("/"), len(data), mode), io.BytesIO(data))
    return out.getvalue()


def dir_layer(root):
    """The layer of a whole directory tree, in sorted order."""
    out = io.BytesIO()
    seen = {}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for top, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(dirs + names):
                path = os.path.join(top, name)
                rel = os.path.relpath(path, root)
                st = os.lstat(path)
                info = member(rel, mode=st.st_mode & 0o7777)
                if os.path.islink(path):
                    info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                elif os.path.isdir(path):
                    info.type = tarfile.DIRTYPE
                elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in seen:
                    info.type, info.linkname = tarfile.LNKTYPE, seen[(st.st_dev, st.st_ino)]
                else:
                    seen[(st.st_dev, st.st_ino)] = rel
                    info.size = st.st_size
                    with open(path, "rb") as f:
                        t.addfile(info, f)
                    continue
                t.addfile(info)
    return out.getvalue()


def main(argv):
    out, ref, config_json, rest = argv[1], argv[2], argv[3], argv[4:]
    files, dirs = [], []
    for flag, value in zip(rest[::2], rest[1::2]):
        if flag == "--file":
            files.append(value.split("=", 1))
        elif flag == "--dir":
            dirs.append(value)
        else:
            sys.exit(f"oci-image.py: unknown argument {flag}")
    raws = ([files_layer(files)] if files else []) + [dir_layer(d) for d in dirs]
    # The small file layers at the highest level; whole trees (a hundred megabytes and more) at
    # gzip's default, many times faster for a few percent.
    levels = ([9] if files else []) + [6] * len(dirs)
    gzs = [gzip.compress(raw, compresslevel=level, mtime=0) for raw, level in zip(raws, levels)]
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": json.loads(config_json),
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(r) for r in raws]},
    }, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + sha(gz), "size": len(gz)} for gz in gzs],
    }, sort_keys=True).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": "sha256:" + sha(manifest), "size": len(manifest),
                       "annotations": {"io.containerd.image.name": ref,
                                       "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}}],
    }, sort_keys=True).encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        def add(name, data):
            t.addfile(member(name, len(data)), io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index)
        for blob in gzs + [config, manifest]:
            add("blobs/sha256/" + sha(blob), blob)
    print("sha256:" + sha(manifest))


if __name__ == "__main__":
    main(sys.argv)
