//! The bundle manifest: any text parses to a manifest or an error, never a panic; whatever
//! parses also serialises and parses back to the same listing.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use provisioner::bundle::manifest::{safe_path, Manifest};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let origin = Path::new("bundle/manifest.toml");
    let Ok(m) = Manifest::parse(&text, origin) else {
        return;
    };
    for l in m.listed() {
        assert!(safe_path(l.path), "an unsafe path was accepted: {:?}", l.path);
        assert!(m.mode_of(l.path) <= 0o7777);
    }
    let written = m.to_toml().expect("a parsed manifest serialises");
    let again = Manifest::parse(&written, origin).expect("a written manifest parses");
    let a: Vec<_> = m.listed().map(|l| (l.name, l.path, l.sha256, l.size)).collect();
    let b: Vec<_> = again
        .listed()
        .map(|l| (l.name, l.path, l.sha256, l.size))
        .collect();
    assert_eq!(a, b);
});
