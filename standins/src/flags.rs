//! Strict command-line parsing against the real component's flag list.
//!
//! The lists are the project's test fixtures (`tests/fixtures/k8s/flags`), embedded at build time,
//! so the stand-ins and the render tests agree on what the real components accept. The parser
//! follows spf13/pflag, which every Kubernetes component uses: `--name=value`, `--name value`,
//! a bare `--name` for booleans, `-v 2` / `-v=2` / `-v2` and `-h` as the only shorthands, `--`
//! ends the flags, and any positional argument is refused as cobra refuses it.

use std::collections::{BTreeMap, BTreeSet};

use crate::timefmt::parse_go_duration;

/// One accepted flag: name without dashes, pflag type, deprecated or not.
#[derive(Debug, Clone)]
pub struct FlagDef {
    pub name: String,
    pub kind: String,
    pub deprecated: bool,
}

fn list_text(component: &str, minor: u32) -> &'static str {
    match component {
        "kube-apiserver" => include_str!("../../tests/fixtures/k8s/flags/kube-apiserver.txt"),
        "kube-controller-manager" => {
            include_str!("../../tests/fixtures/k8s/flags/kube-controller-manager.txt")
        }
        // The nearest list at or below the target minor.
        "kube-scheduler" if minor >= 36 => {
            include_str!("../../tests/fixtures/k8s/flags/kube-scheduler.v1.36.txt")
        }
        "kube-scheduler" => include_str!("../../tests/fixtures/k8s/flags/kube-scheduler.txt"),
        "kubelet" => include_str!("../../tests/fixtures/k8s/flags/kubelet.txt"),
        "kube-proxy" => include_str!("../../tests/fixtures/k8s/flags/kube-proxy.txt"),
        _ => "",
    }
}

/// Flags removed in a release newer than the list that still shows them.
pub fn removed(component: &str, minor: u32) -> &'static [&'static str] {
    match component {
        // Kubernetes 1.35 removed it (the sandbox image comes from the runtime's config).
        "kubelet" if minor >= 35 => &["pod-infra-container-image"],
        _ => &[],
    }
}

/// The flags the real `component` accepts at `minor`.
pub fn defs(component: &str, minor: u32) -> Vec<FlagDef> {
    let removed = removed(component, minor);
    list_text(component, minor)
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next()?.strip_prefix("--")?;
            let kind = cols.next().unwrap_or("string");
            let deprecated = cols.next() == Some("deprecated");
            (!removed.contains(&name)).then(|| FlagDef {
                name: name.to_string(),
                kind: kind.to_string(),
                deprecated,
            })
        })
        .collect()
}

/// A parsed, validated command line.
#[derive(Debug, Clone)]
pub struct Flags {
    known: BTreeSet<String>,
    values: BTreeMap<String, Vec<String>>,
    /// pflag's "Flag --x has been deprecated" notices, printed by the caller.
    pub warnings: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Parsed {
    Run(Flags),
    Help,
    Version,
}

impl Flags {
    fn check_known(&self, name: &str) {
        // A stand-in asking for a flag its component does not have is a bug in the stand-in.
        debug_assert!(
            self.known.contains(name),
            "stand-in reads unknown flag --{name}"
        );
    }

    /// The last value given for `name` (pflag: the last occurrence wins for scalars).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.check_known(name);
        self.values.get(name)?.last().map(String::as_str)
    }

    /// Every comma-separated item of every occurrence (pflag's `strings` type appends).
    pub fn list(&self, name: &str) -> Vec<String> {
        self.check_known(name);
        self.values
            .get(name)
            .into_iter()
            .flatten()
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Every occurrence as given (for flags that may be repeated, like --service-account-key-file).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.check_known(name);
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        self.get(name).and_then(parse_bool).unwrap_or(default)
    }

    /// The flag's value if it was given and is not empty.
    pub fn path(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn is_set(&self, name: &str) -> bool {
        self.check_known(name);
        self.values.contains_key(name)
    }

    /// Names of the flags given on the command line.
    pub fn given(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }
}

/// strconv.ParseBool.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// strconv.ParseInt with base 0 (decimal, 0x.., 0o.., 0b.., and `_` separators).
fn parse_go_int(s: &str) -> Option<i128> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
        (16, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0o") {
        (8, b.to_string())
    } else if let Some(b) = lower.strip_prefix("0b") {
        (2, b.to_string())
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string())
    } else {
        (10, lower)
    };
    let body = body.replace('_', "");
    if body.is_empty() {
        return None;
    }
    let v = i128::from_str_radix(&body, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// Checks a value the way the flag's pflag type would parse it.
fn check_value(kind: &str, value: &str) -> Result<(), String> {
    let int_in = |lo: i128, hi: i128| match parse_go_int(value) {
        Some(v) if (lo..=hi).contains(&v) => Ok(()),
        Some(_) => Err(format!(
            "strconv.ParseInt: parsing {value:?}: value out of range"
        )),
        None => Err(format!(
            "strconv.ParseInt: parsing {value:?}: invalid syntax"
        )),
    };
    let pairs = |sep: char| {
        value
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .try_for_each(|p| match p.split_once(sep) {
                Some((k, _)) if !k.trim().is_empty() => Ok(()),
                _ => Err(format!("malformed pair {p:?}, expect key{sep}value")),
            })
    };
    match kind {
        "bool" => parse_bool(value)
            .map(|_| ())
            .ok_or_else(|| format!("strconv.ParseBool: parsing {value:?}: invalid syntax")),
        "int" | "int64" => int_in(i64::MIN as i128, i64::MAX as i128),
        "int32" => int_in(i32::MIN as i128, i32::MAX as i128),
        "uint" => int_in(0, u64::MAX as i128),
        "float" => value
            .parse::<f64>()
            .map(|_| ())
            .map_err(|_| format!("strconv.ParseFloat: parsing {value:?}: invalid syntax")),
        "duration" => parse_go_duration(value)
            .map(|_| ())
            .ok_or_else(|| format!("time: invalid duration {value:?}")),
        "int32Slice" => value
            .split(',')
            .filter(|p| !p.is_empty())
            .try_for_each(|p| check_value("int32", p.trim())),
        "mapStringBool" => value
            .split(',')
            .filter(|p| !p.trim().is_empty())
            .try_for_each(|p| match p.split_once('=') {
                Some((_, b)) => check_value("bool", b.trim()),
                None => Err(format!("malformed pair {p:?}, expect string=bool")),
            }),
        "mapStringString" | "stringToString" => pairs('='),
        "colonSeparatedMultimapStringString" => pairs(':'),
        _ => Ok(()),
    }
}

/// pflag treats these types as booleans: a bare `--name` means `--name=true`.
fn takes_no_value(kind: &str) -> bool {
    matches!(kind, "bool" | "version")
}

/// Go's %q of a string slice: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Parses `argv` (without the program name) for `component` at Kubernetes `minor`. The error
/// text is what the real component prints after "Error: ".
pub fn parse(component: &str, minor: u32, argv: &[String]) -> Result<Parsed, String> {
    let defs = defs(component, minor);
    let by_name: BTreeMap<&str, &FlagDef> = defs.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut flags = Flags {
        known: defs.iter().map(|d| d.name.clone()).collect(),
        values: BTreeMap::new(),
        warnings: Vec::new(),
    };
    let mut positional = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        let (name, inline): (String, Option<String>) = if arg == "--" {
            positional.extend(argv[i..].iter().cloned());
            break;
        } else if let Some(body) = arg.strip_prefix("--") {
            match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let c = short.chars().next().unwrap_or('-');
            let rest = &short[c.len_utf8()..];
            let long = match c {
                'h' => "help",
                'v' => "v",
                _ => return Err(format!("unknown shorthand flag: '{c}' in {arg}")),
            };
            let inline = match rest.strip_prefix('=') {
                Some(v) => Some(v.to_string()),
                None if rest.is_empty() => None,
                // `-v2`: the rest is the value for a value-taking shorthand.
                None if long == "v" => Some(rest.to_string()),
                None => {
                    let next = rest.chars().next().unwrap_or('-');
                    return Err(format!("unknown shorthand flag: '{next}' in {arg}"));
                }
            };
            (long.to_string(), inline)
        } else {
            positional.push(arg.clone());
            continue;
        };
        let Some(def) = by_name.get(name.as_str()) else {
            return Err(format!("unknown flag: --{name}"));
        };
        let value = match inline {
            Some(v) => v,
            None if takes_no_value(&def.kind) => "true".to_string(),
            None if i < argv.len() => {
                i += 1;
                argv[i - 1].clone()
            }
            None => return Err(format!("flag needs an argument: --{name}")),
        };
        if def.kind != "version" {
            check_value(&def.kind, &value)
                .map_err(|e| format!("invalid argument {value:?} for \"--{name}\" flag: {e}"))?;
        }
        if def.deprecated {
            flags.warnings.push(format!(
                "Flag --{name} has been deprecated (accepted, as the real {component} {} still does)",
                crate::version::git_version()
            ));
        }
        flags.values.entry(name).or_default().push(value);
    }
    if !positional.is_empty() {
        return Err(format!(
            "{component:?} does not take any arguments, got {}",
            go_quote_list(&positional)
        ));
    }
    if flags.bool_or("help", false) {
        return Ok(Parsed::Help);
    }
    if flags
        .get("version")
        .is_some_and(|v| v == "raw" || parse_bool(v) == Some(true))
    {
        return Ok(Parsed::Version);
    }
    Ok(Parsed::Run(flags))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn run(component: &str, minor: u32, a: &[&str]) -> Result<Flags, String> {
        match parse(component, minor, &args(a))? {
            Parsed::Run(f) => Ok(f),
            other => panic!("expected a run, got {other:?}"),
        }
    }

    #[test]
    fn all_three_value_forms() {
        let f = run(
            "kube-apiserver",
            35,
            &[
                "--secure-port=6443",
                "--advertise-address",
                "10.0.0.1",
                "--allow-privileged",
            ],
        )
        .unwrap();
        assert_eq!(f.get("secure-port"), Some("6443"));
        assert_eq!(f.get("advertise-address"), Some("10.0.0.1"));
        assert!(f.bool_or("allow-privileged", false));
    }

    #[test]
    fn unknown_flag_is_refused_with_pflags_message() {
        let e = run("kube-apiserver", 35, &["--bogus=1"]).unwrap_err();
        assert_eq!(e, "unknown flag: --bogus");
        let e = run("kube-scheduler", 35, &["-x"]).unwrap_err();
        assert_eq!(e, "unknown shorthand flag: 'x' in -x");
    }

    #[test]
    fn deprecated_flag_is_accepted_with_a_warning() {
        let f = run("kubelet", 34, &["--cgroup-driver=systemd"]).unwrap();
        assert_eq!(f.get("cgroup-driver"), Some("systemd"));
        assert_eq!(f.warnings.len(), 1);
        assert!(f.warnings[0].contains("--cgroup-driver has been deprecated"));
    }

    #[test]
    fn removed_flag_is_unknown_from_its_release_on() {
        let flag = "--pod-infra-container-image=registry.k8s.io/pause:3.10";
        assert!(run("kubelet", 34, &[flag]).is_ok());
        assert_eq!(
            run("kubelet", 35, &[flag]).unwrap_err(),
            "unknown flag: --pod-infra-container-image"
        );
    }

    #[test]
    fn versioned_list_is_used_for_its_minor() {
        assert!(run("kube-scheduler", 35, &["--tls-curve-preferences=23"]).is_err());
        assert!(run("kube-scheduler", 36, &["--tls-curve-preferences=23"]).is_ok());
    }

    #[test]
    fn values_are_checked_by_type() {
        let e = run("kube-apiserver", 35, &["--secure-port=abc"]).unwrap_err();
        assert!(
            e.starts_with("invalid argument \"abc\" for \"--secure-port\" flag"),
            "{e}"
        );
        assert!(run("kube-apiserver", 35, &["--profiling=maybe"]).is_err());
        assert!(run("kube-apiserver", 35, &["--audit-log-batch-max-wait=5x"]).is_err());
        assert!(run("kube-apiserver", 35, &["--audit-log-batch-max-wait=1m30s"]).is_ok());
        let e = run("kube-apiserver", 35, &["--secure-port"]).unwrap_err();
        assert_eq!(e, "flag needs an argument: --secure-port");
    }

    #[test]
    fn a_bool_does_not_take_the_next_word_and_positionals_are_refused() {
        let e = run("kube-apiserver", 35, &["--allow-privileged", "true"]).unwrap_err();
        assert_eq!(
            e,
            "\"kube-apiserver\" does not take any arguments, got [\"true\"]"
        );
    }

    #[test]
    fn shorthands_help_and_version() {
        let f = run("kube-proxy", 35, &["-v=2", "-v", "3", "-v4"]).unwrap();
        assert_eq!(f.all("v"), vec!["2", "3", "4"]);
        assert!(matches!(
            parse("kubelet", 35, &args(&["-h"])),
            Ok(Parsed::Help)
        ));
        assert!(matches!(
            parse("kubelet", 35, &args(&["--help"])),
            Ok(Parsed::Help)
        ));
        assert!(matches!(
            parse("kubelet", 35, &args(&["--version"])),
            Ok(Parsed::Version)
        ));
        assert!(matches!(
            parse("kubelet", 35, &args(&["--version=raw"])),
            Ok(Parsed::Version)
        ));
        assert!(matches!(
            parse("kubelet", 35, &args(&["--version=false"])),
            Ok(Parsed::Run(_))
        ));
    }

    #[test]
    fn repeated_list_flags_append() {
        let f = run(
            "kube-apiserver",
            35,
            &[
                "--authorization-mode=Node",
                "--authorization-mode",
                "RBAC,Webhook",
            ],
        )
        .unwrap();
        assert_eq!(
            f.list("authorization-mode"),
            vec!["Node", "RBAC", "Webhook"]
        );
    }

    #[test]
    fn every_component_has_a_list() {
        for c in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubelet",
            "kube-proxy",
        ] {
            for minor in [34, 35, 36] {
                assert!(defs(c, minor).len() > 40, "{c} 1.{minor}");
            }
        }
    }
}
