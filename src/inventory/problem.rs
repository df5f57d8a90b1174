//! Problems found in an inventory, each tied to the key that causes it.

use std::fmt;

/// A key path inside the inventory, printed the way operators read it: `hosts[2].address`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(k.to_string()));
        p
    }

    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// Parses the dotted form (`hosts[2].address`); used by tests and by callers naming keys.
    pub fn parse(s: &str) -> Self {
        let mut p = KeyPath::root();
        for part in s.split('.').filter(|p| !p.is_empty()) {
            let mut rest = part;
            if let Some(i) = rest.find('[') {
                p = p.key(&rest[..i]);
                rest = &rest[i..];
                while let Some(end) = rest.find(']') {
                    if let Ok(n) = rest[1..end].parse() {
                        p = p.index(n);
                    }
                    rest = &rest[end + 1..];
                }
            } else {
                p = p.key(rest);
            }
        }
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, seg) in self.0.iter().enumerate() {
            if i > 0 && matches!(seg, Segment::Key(_)) {
                f.write_str(".")?;
            }
            match seg {
                // As TOML writes a key that is not bare (`eviction_hard."memory.available"`).
                Segment::Key(k) if k.contains(['.', ' ', '"']) => write!(f, "{k:?}")?,
                Segment::Key(k) => f.write_str(k)?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub severity: Severity,
    pub path: KeyPath,
    /// 1-based line and column of the key, when the file has it.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl Problem {
    pub fn error(path: KeyPath, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Error,
            path,
            location: None,
            message: message.into(),
        }
    }

    pub fn warning(path: KeyPath, message: impl Into<String>) -> Self {
        Problem {
            severity: Severity::Warning,
            ..Problem::error(path, message)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.path)?;
        if let Some((line, col)) = self.location {
            write!(f, " (line {line}, column {col})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The inventory cannot be used. Carries every problem found, not just the first.
#[derive(Debug)]
pub struct Invalid {
    pub file: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors = self
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        writeln!(
            f,
            "{} is not a valid inventory ({errors} error{}):",
            self.file,
            if errors == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        write!(f, "Every key is described in the commented example inventory.toml and in `provisioner schema`.")
    }
}

impl std::error::Error for Invalid {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_round_trip() {
        for s in [
            "hosts[2].address",
            "network.pod_cidr",
            "api.extra_sans[0]",
            "cluster",
        ] {
            assert_eq!(KeyPath::parse(s).to_string(), s);
        }
    }
}
