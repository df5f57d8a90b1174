//! known_hosts parsing and host matching: any file text is read line by line (bad lines are
//! skipped), and every lookup answers without a panic and consistently with the entries.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use provisioner::transport::known_hosts::{
    blob_key_type, fingerprint, format_line, lookup_name, KnownHosts, Marker, Status,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let file = Path::new("known_hosts");
    let kh = KnownHosts::parse(&text, file);

    // Look up fixed names and every word of the input, so patterns meet names that look like
    // them (wildcards, brackets, ports, negations, hashed fields).
    let mut names: Vec<String> = vec![
        lookup_name("10.0.0.1", 22),
        lookup_name("Node-1.Example.COM", 2222),
        String::new(),
    ];
    for word in text.split(|c: char| c.is_whitespace() || c == ',').take(64) {
        names.push(word.to_string());
        names.push(word.trim_start_matches('!').to_string());
    }

    for name in &names {
        let _ = kh.authorities(name).count();
        for e in kh.host_keys(name) {
            assert_eq!(e.marker, Marker::None);
            // A plain line matching the host with this very key: known, unless revoked.
            match kh.check(name, &e.blob) {
                Status::Known(_) | Status::Revoked(_) => {}
                other => panic!("a matching line's key is {other:?}"),
            }
        }
        let unknown = [0u8; 3];
        match kh.check(name, &unknown) {
            Status::Known(_) | Status::Revoked(_) => panic!("an invalid blob was accepted"),
            _ => {}
        }
    }

    for e in kh.entries.iter().take(16) {
        assert!(blob_key_type(&e.blob).is_some());
        let _ = fingerprint(&e.blob);
        // What `append` would write for this key reads back as the same key for that host,
        // and as nothing more.
        let line = format_line("host.example", &e.blob);
        let again = KnownHosts::parse(&line, file);
        assert_eq!(again.entries.len(), 1, "{line:?}");
        assert_eq!(again.entries[0].blob, e.blob);
        assert!(again.entries[0].matches_host("host.example"));
        assert!(matches!(
            again.check("host.example", &e.blob),
            Status::Known(_)
        ));
    }
});
