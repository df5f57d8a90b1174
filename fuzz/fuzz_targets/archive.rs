//! The bundle archive reader: any file is refused or read without a panic, without
//! unbounded allocation, and without writing anything outside the destination directory.
//!
//! The first byte of the input chooses how the rest becomes the file: with its lowest bit
//! clear the rest is written as it is (a zstd stream, or not); with it set the rest is a tar
//! stream that is compressed here first, so the fuzzer can reach the tar and manifest checks
//! without having to produce valid zstd itself.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use provisioner::bundle::{archive, sha256_hex, MANIFEST};

fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix("provisioner-fuzz-")
        .tempdir_in(base)
        .expect("a temporary directory")
}

/// Every path under `dir`, refusing anything that is neither a directory nor a regular file.
fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            walk(&path, found);
        } else {
            assert!(meta.is_file(), "{} is not a regular file", path.display());
        }
        found.push(path);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode & 1 == 1 {
        zstd::encode_all(rest, 1).expect("compressing in memory")
    } else {
        rest.to_vec()
    };
    let tmp = scratch();
    let file = tmp.path().join("bundle.tar.zst");
    std::fs::write(&file, &bytes).unwrap();
    let dest = tmp.path().join("dest");
    std::fs::create_dir(&dest).unwrap();

    let peeked = archive::peek(&file);
    let checked = archive::read(&file, None);
    let unpacked = archive::read(&file, Some(&dest));

    // Nothing beside the destination: the archive and the destination are all there is.
    let mut beside: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    beside.sort();
    assert_eq!(beside, ["bundle.tar.zst", "dest"]);
    let mut written = Vec::new();
    walk(&dest, &mut written);

    if let Ok((m, sha)) = &checked {
        assert!(peeked.is_ok(), "read accepts what peek refuses");
        assert_eq!(*sha, sha256_hex(&bytes));
        assert!(m.listed().all(|l| provisioner::bundle::manifest::safe_path(l.path)));
    }
    if let Ok((m, sha)) = &unpacked {
        assert!(checked.is_ok(), "unpacking accepts what reading refuses");
        assert_eq!(*sha, sha256_hex(&bytes));
        for l in m.listed() {
            let meta = std::fs::symlink_metadata(dest.join(l.path)).unwrap();
            assert!(meta.is_file());
            assert_eq!(meta.len(), l.size);
        }
        // Only the manifest, the listed files and their parent directories.
        for p in &written {
            let rel = p.strip_prefix(&dest).unwrap().to_str().unwrap();
            let listed = rel == MANIFEST
                || m.listed()
                    .any(|l| l.path == rel || l.path.starts_with(&format!("{rel}/")));
            assert!(listed, "{rel} was written but is not listed");
        }
    }
});
