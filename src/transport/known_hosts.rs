//! OpenSSH `known_hosts` files: parsing, host matching, markers, appending, and key
//! fingerprints.
//!
//! Works on raw public key blobs (the SSH wire encoding, what the base64 field of a line holds),
//! so a line with a key type this program cannot use is still read and still counts.
//!
//! What is understood, as in OpenSSH's sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT":
//! - plain host patterns, comma separated, with `*` and `?` wildcards and `!` negation;
//! - `[host]:port` names, used for every port other than 22;
//! - hashed names `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`;
//! - the markers `@cert-authority` (the key is a CA trusted for host certificates of the
//!   matching hosts) and `@revoked` (the key is never accepted).

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The OpenSSH fingerprint of a public key blob: `SHA256:` and the unpadded base64 of the
/// SHA-256 of the blob, as `ssh-keygen -lf` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The key type a blob starts with (`ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`...): one
/// word of printable ASCII, as SSH algorithm names are, or the blob is not a key.
pub fn blob_key_type(blob: &[u8]) -> Option<&str> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let name = blob.get(4..4 + len)?;
    if name.is_empty() || !name.iter().all(u8::is_ascii_graphic) {
        return None;
    }
    std::str::from_utf8(name).ok()
}

/// The name a host is looked up under: `address` for port 22, `[address]:port` otherwise.
pub fn lookup_name(address: &str, port: u16) -> String {
    let address = address.to_ascii_lowercase();
    if port == 22 {
        address
    } else {
        format!("[{address}]:{port}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A plain host key line.
    None,
    /// `@cert-authority`: the key signs host certificates of the matching hosts.
    CertAuthority,
    /// `@revoked`: the key must never be accepted.
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosts {
    /// `|1|salt|hash`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// Comma-separated patterns, lowercased.
    Patterns(Vec<String>),
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let mut matched = false;
                for p in patterns {
                    if let Some(negated) = p.strip_prefix('!') {
                        if wildcard_match(negated, name) {
                            return false;
                        }
                    } else if wildcard_match(p, name) {
                        matched = true;
                    }
                }
                matched
            }
        }
    }
}

/// Where a line came from, for messages: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
pub struct Entry {
    pub marker: Marker,
    hosts: Hosts,
    /// The key type written on the line.
    pub key_type: String,
    /// The decoded key blob.
    pub blob: Vec<u8>,
    pub location: Location,
}

impl Entry {
    /// Whether the line's host field matches `name` (a [`lookup_name`]).
    pub fn matches_host(&self, name: &str) -> bool {
        self.hosts.matches(&name.to_ascii_lowercase())
    }
}

/// The lines of one or more known_hosts files, in order.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    pub entries: Vec<Entry>,
}

/// What the files say about a host presenting a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// A `@revoked` line lists this key.
    Revoked(Location),
    /// A plain line for this host has this key.
    Known(Location),
    /// Lines for this host list other keys and none lists this one. `same_type` tells whether
    /// one of them has the presented key's type (a replaced key) or only other types.
    Changed {
        known: Vec<(String, Location)>,
        same_type: bool,
    },
    /// No plain line for this host.
    Unknown,
}

impl KnownHosts {
    /// Reads the files that exist; a missing file is empty. Lines that cannot be parsed are
    /// skipped, as OpenSSH does.
    pub fn load(paths: &[PathBuf]) -> io::Result<KnownHosts> {
        let mut all = KnownHosts::default();
        for path in paths {
            match std::fs::read(path) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    all.entries.extend(KnownHosts::parse(&text, path).entries);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("reading {}: {e}", path.display()),
                    ))
                }
            }
        }
        Ok(all)
    }

    pub fn parse(text: &str, file: &Path) -> KnownHosts {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| parse_line(line, file, i + 1))
            .collect();
        KnownHosts { entries }
    }

    /// The status of `blob` presented by the host looked up as `name` (see [`lookup_name`]).
    pub fn check(&self, name: &str, blob: &[u8]) -> Status {
        if let Some(loc) = self.revoked(blob) {
            return Status::Revoked(loc);
        }
        let presented_type = blob_key_type(blob);
        let mut known = Vec::new();
        let mut same_type = false;
        for e in self.host_keys(name) {
            if e.blob == blob {
                return Status::Known(e.location.clone());
            }
            let t = blob_key_type(&e.blob).unwrap_or(&e.key_type);
            same_type |= Some(t) == presented_type;
            known.push((t.to_string(), e.location.clone()));
        }
        if known.is_empty() {
            Status::Unknown
        } else {
            Status::Changed { known, same_type }
        }
    }

    /// The first `@revoked` line listing `blob`, whatever its host field: a revoked key is
    /// refused everywhere.
    pub fn revoked(&self, blob: &[u8]) -> Option<Location> {
        self.entries
            .iter()
            .find(|e| e.marker == Marker::Revoked && e.blob == blob)
            .map(|e| e.location.clone())
    }

    /// Plain host key lines matching `name`.
    pub fn host_keys<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.marker == Marker::None && e.matches_host(name))
    }

    /// `@cert-authority` lines matching `name`.
    pub fn authorities<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.marker == Marker::CertAuthority && e.matches_host(name))
    }
}

fn parse_line(line: &str, file: &Path, number: usize) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@cert-authority" => Marker::CertAuthority,
        "@revoked" => Marker::Revoked,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let hosts = parse_hosts(first)?;
    let key_type = fields.next()?.to_string();
    let blob = STANDARD.decode(fields.next()?).ok()?;
    blob_key_type(&blob)?;
    Some(Entry {
        marker,
        hosts,
        key_type,
        blob,
        location: Location {
            file: file.to_path_buf(),
            line: number,
        },
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        let salt = STANDARD.decode(salt).ok()?;
        let hash = STANDARD.decode(hash).ok()?;
        return (hash.len() == 20).then_some(Hosts::Hashed { salt, hash });
    }
    if field.starts_with('|') {
        return None;
    }
    Some(Hosts::Patterns(
        field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
    ))
}

/// OpenSSH's `match_pattern`: `*` matches any run of characters, `?` exactly one.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The line [`append`] writes: `name key-type base64`.
pub fn format_line(name: &str, blob: &[u8]) -> String {
    let key_type = blob_key_type(blob).unwrap_or("unknown");
    format!("{name} {key_type} {}", STANDARD.encode(blob))
}

/// Appends a plain line for `name` to `path`, creating the file (mode 0600) and its parent
/// directory (mode 0700) when missing. Keeps the file ending with a newline.
pub fn append(path: &Path, name: &str, blob: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
    }
    let needs_newline = match std::fs::read(path) {
        Ok(bytes) => !bytes.is_empty() && !bytes.ends_with(b"\n"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mut line = String::new();
    if needs_newline {
        line.push('\n');
    }
    line.push_str(&format_line(name, blob));
    line.push('\n');
    file.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically valid blob of the given key type (the key bytes are not checked here).
    fn blob(key_type: &str, fill: u8) -> Vec<u8> {
        let mut b = (key_type.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(key_type.as_bytes());
        b.extend_from_slice(&32u32.to_be_bytes());
        b.extend_from_slice(&[fill; 32]);
        b
    }

    fn file() -> &'static Path {
        Path::new("kh")
    }

    fn line(hosts: &str, b: &[u8]) -> String {
        format!(
            "{hosts} {} {}",
            blob_key_type(b).unwrap(),
            STANDARD.encode(b)
        )
    }

    #[test]
    fn fingerprint_matches_ssh_keygen_format() {
        // `ssh-keygen -lf` prints this fingerprint for this key.
        let b = STANDARD
            .decode("AAAAC3NzaC1lZDI1NTE5AAAAIOJd1FiVZGWwzYz3T+tsjPSeqyS3hxHMVwm53Er6SGnA")
            .unwrap();
        assert_eq!(
            fingerprint(&b),
            "SHA256:8NoRsLP0G0BZZOe9INsgIBBypViR3y9WkRvI3ouRI1E"
        );
        assert_eq!(blob_key_type(&b), Some("ssh-ed25519"));
    }

    #[test]
    fn lookup_names_bracket_non_default_ports() {
        assert_eq!(lookup_name("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(lookup_name("Node-1.Example", 2222), "[node-1.example]:2222");
    }

    #[test]
    fn wildcards_and_negation() {
        assert!(wildcard_match("*.example.com", "a.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(wildcard_match("10.0.0.?", "10.0.0.7"));
        assert!(!wildcard_match("10.0.0.?", "10.0.0.17"));
        assert!(wildcard_match("[10.0.0.1]:*", "[10.0.0.1]:2222"));
        assert!(wildcard_match("*", "anything"));
        let hosts = parse_hosts("*.example.com,!bad.example.com").unwrap();
        assert!(hosts.matches("good.example.com"));
        assert!(!hosts.matches("bad.example.com"));
        assert!(!hosts.matches("other.org"));
    }

    #[test]
    fn plain_entries_known_changed_unknown() {
        let ed = blob("ssh-ed25519", 1);
        let ed2 = blob("ssh-ed25519", 2);
        let ec = blob("ecdsa-sha2-nistp256", 3);
        let text = format!(
            "# comment\n\n{}\n{}\nnot a valid line\n",
            line("node1,10.0.0.1", &ed),
            line("[10.0.0.2]:2222", &ec)
        );
        let kh = KnownHosts::parse(&text, file());
        assert_eq!(kh.entries.len(), 2);
        assert_eq!(
            kh.check("10.0.0.1", &ed),
            Status::Known(Location {
                file: file().into(),
                line: 3
            })
        );
        assert!(matches!(kh.check("NODE1", &ed), Status::Known(_)));
        assert!(matches!(
            kh.check("10.0.0.1", &ed2),
            Status::Changed {
                same_type: true,
                ..
            }
        ));
        assert!(matches!(
            kh.check("[10.0.0.2]:2222", &ed),
            Status::Changed {
                same_type: false,
                ..
            }
        ));
        // The port is part of the name: the same address on port 22 is another host.
        assert_eq!(kh.check("10.0.0.2", &ec), Status::Unknown);
        assert!(matches!(kh.check("[10.0.0.2]:2222", &ec), Status::Known(_)));
    }

    #[test]
    fn hashed_entries() {
        // HMAC-SHA1(salt, name), as `ssh-keygen -H` writes it.
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[127.0.0.1]:2200");
        let hash = mac.finalize().into_bytes();
        let field = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash));
        let b = blob("ssh-ed25519", 9);
        let kh = KnownHosts::parse(&line(&field, &b), file());
        assert!(matches!(kh.check("[127.0.0.1]:2200", &b), Status::Known(_)));
        assert_eq!(kh.check("[127.0.0.1]:2201", &b), Status::Unknown);
        assert_eq!(kh.check("127.0.0.1", &b), Status::Unknown);
    }

    #[test]
    fn markers() {
        let ca = blob("ssh-ed25519", 4);
        let bad = blob("ssh-ed25519", 5);
        let text = format!(
            "@cert-authority {}\n@revoked {}\n{}\n@unknown-marker {}\n",
            line("*.example.com", &ca),
            line("*", &bad),
            line("a.example.com", &bad),
            line("a.example.com", &ca),
        );
        let kh = KnownHosts::parse(&text, file());
        assert_eq!(kh.entries.len(), 3);
        assert_eq!(kh.authorities("a.example.com").count(), 1);
        assert_eq!(kh.authorities("a.example.org").count(), 0);
        // A CA line is not a host key line.
        assert_eq!(kh.check("a.example.com", &ca), {
            Status::Changed {
                known: vec![(
                    "ssh-ed25519".into(),
                    Location {
                        file: file().into(),
                        line: 3,
                    },
                )],
                same_type: true,
            }
        });
        // Revocation wins over a matching plain line.
        assert!(matches!(
            kh.check("a.example.com", &bad),
            Status::Revoked(Location { line: 2, .. })
        ));
    }

    #[test]
    fn append_creates_private_file_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        let b = blob("ssh-ed25519", 7);
        append(&path, "[127.0.0.1]:2222", &b).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A file without a trailing newline gets one before the new line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"# no newline")
            .unwrap();
        append(&path, "other", &b).unwrap();
        let kh = KnownHosts::load(&[path.clone(), dir.path().join("missing")]).unwrap();
        assert_eq!(kh.entries.len(), 2);
        assert!(matches!(kh.check("[127.0.0.1]:2222", &b), Status::Known(_)));
        assert!(matches!(kh.check("other", &b), Status::Known(_)));
    }

    /// A blob's key type is one word of printable ASCII, as SSH algorithm names are: a type with
    /// whitespace would make `format_line` write a line that reads back as something else (a
    /// newline in it would even add a line of the attacker's choosing). Found by the
    /// `known_hosts` fuzz target.
    #[test]
    fn key_types_with_whitespace_are_not_keys() {
        for bad in [
            "s@\u{b}ssh-ed25",
            "x\n* ssh-ed25519 AAAA",
            "",
            "ssh ed25519",
        ] {
            let b = blob(bad, 1);
            assert_eq!(blob_key_type(&b), None, "{bad:?}");
            let line = format_line("host.example", &b);
            assert!(!line.contains(['\n', '\u{b}']), "{line:?}");
            assert_eq!(line.split_whitespace().count(), 3, "{line:?}");
            // Such a blob on a line is not a usable entry.
            let text = format!("host.example ssh-ed25519 {}\n", STANDARD.encode(&b));
            assert!(KnownHosts::parse(&text, file()).entries.is_empty());
        }
    }
}
