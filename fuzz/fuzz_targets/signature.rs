//! SSHSIG bundle signatures: any bytes as the `.sig` of a fixed message, checked against a fixed
//! ed25519 public key, are refused or accepted without a panic; only a real signature by that
//! key over that message is accepted.
//!
//! An input that starts like a PEM armour is written as it is; any other input is taken as the
//! binary SSHSIG blob and armoured here first, so mutations reach the blob's parser instead of
//! only breaking the base64.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use base64::Engine;
use libfuzzer_sys::fuzz_target;
use provisioner::bundle::signature;

/// The message the seed signatures were made over, with
/// `ssh-keygen -Y sign -n provisioner-bundle -f KEY message`.
const MESSAGE: &[u8] = b"provisioner fuzz: the signed message\n";
/// The key the seed signatures were made with (its private half is not kept).
const PUBLIC_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHCnyb3w6MoyELEawXXU3KY2QmAOcb6QUuy0odQOKhzT fuzz";
const FINGERPRINT: &str = "SHA256:XFK2QGAO1VZV4f/x1FAJ5zQGPmB8fzV5Y/GR0HvLKAQ";

struct Fixture {
    _dir: tempfile::TempDir,
    signed: PathBuf,
    public_key: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let signed = dir.path().join("message");
        let public_key = dir.path().join("key.pub");
        std::fs::write(&signed, MESSAGE).unwrap();
        std::fs::write(&public_key, PUBLIC_KEY).unwrap();
        Fixture {
            _dir: dir,
            signed,
            public_key,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let file = if data.starts_with(b"-----BEGIN") {
        data.to_vec()
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let mut pem = String::from("-----BEGIN SSH SIGNATURE-----\n");
        for line in b64.as_bytes().chunks(70) {
            pem.push_str(std::str::from_utf8(line).unwrap());
            pem.push('\n');
        }
        pem.push_str("-----END SSH SIGNATURE-----\n");
        pem.into_bytes()
    };
    std::fs::write(signature::sig_path(&f.signed), file).unwrap();
    let digests = signature::digests_of(MESSAGE);
    if let Ok(fp) = signature::verify(&f.signed, &digests, &f.public_key) {
        assert_eq!(fp, FINGERPRINT);
        // The same signature over any other content is refused.
        let other = signature::digests_of(b"provisioner fuzz: another message\n");
        assert!(signature::verify(&f.signed, &other, &f.public_key).is_err());
    }
});
