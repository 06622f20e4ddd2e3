//! GNU `getopt`/`getopt_long` as the peers use it, so their command lines parse the same.
//!
//! Why not clap: tini and catatonit rely on glibc's *permutation* (options may follow the
//! program: `tini echo hi -l` prints the licence), dumb-init on its opposite (`+`: stop at
//! the first operand), `POSIXLY_CORRECT` switches permutation off, long options may be
//! abbreviated, and the error messages are glibc's. A drop-in must reproduce all of that.

use std::ffi::OsString;

/// Whether a long option takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HasArg {
    /// `--help`
    No,
    /// `--rewrite s:r` or `--rewrite=s:r`
    Required,
}

/// The option table.
pub struct Spec<'a> {
    /// getopt's short-option string (`"p:hvwgle:s"`); a leading `+` stops at the first
    /// operand.
    pub short: &'a str,
    /// Long options: name, argument, the short option they stand for.
    pub long: &'a [(&'a str, HasArg, char)],
}

/// A parsed command line: options in order, then the operands (the program and its
/// arguments).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Each option with its value.
    pub options: Vec<(char, Option<String>)>,
    /// Everything that is not an option.
    pub operands: Vec<OsString>,
    /// The error getopt stopped at, after the options before it (which a program acts on
    /// first, as with `-h` followed by a bad option).
    pub error: Option<String>,
}

impl Spec<'_> {
    fn short_takes_arg(&self, c: char) -> Option<bool> {
        let table = self.short.trim_start_matches('+');
        let i = table.find(c)?;
        Some(table[i + c.len_utf8()..].starts_with(':'))
    }

    /// Parses `args` (without the program name). The error, if any, is glibc's message, to
    /// be printed after `name: `.
    pub fn parse(&self, args: &[OsString]) -> Parsed {
        let mut parsed = Parsed::default();
        if let Err(e) = self.parse_into(args, &mut parsed) {
            parsed.error = Some(e);
        }
        parsed
    }

    fn parse_into(&self, args: &[OsString], parsed: &mut Parsed) -> Result<(), String> {
        let permute = !self.short.starts_with('+') && std::env::var_os("POSIXLY_CORRECT").is_none();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            let Some(text) = arg.to_str() else {
                // Not UTF-8: never an option.
                if !permute {
                    parsed.operands.extend_from_slice(&args[i..]);
                    return Ok(());
                }
                parsed.operands.push(arg.clone());
                i += 1;
                continue;
            };
            if text == "--" {
                parsed.operands.extend_from_slice(&args[i + 1..]);
                return Ok(());
            }
            if let Some(long) = text.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let exact = self.long.iter().find(|(n, _, _)| *n == name);
                let candidates: Vec<_> = self.long.iter().filter(|(n, _, _)| n.starts_with(name)).collect();
                let &(full, has_arg, short) = match (exact, candidates.as_slice()) {
                    (Some(o), _) => o,
                    (None, [one]) => one,
                    (None, []) => return Err(format!("unrecognized option '--{name}'")),
                    (None, many) => {
                        let list: Vec<String> = many.iter().map(|(n, _, _)| format!("'--{n}'")).collect();
                        return Err(format!("option '--{name}' is ambiguous; possibilities: {}", list.join(" ")));
                    }
                };
                let value = match (has_arg, inline) {
                    (HasArg::No, Some(_)) => return Err(format!("option '--{full}' doesn't allow an argument")),
                    (HasArg::No, None) => None,
                    (HasArg::Required, Some(v)) => Some(v),
                    (HasArg::Required, None) => {
                        i += 1;
                        match args.get(i).and_then(|a| a.to_str()) {
                            Some(v) => Some(v.to_string()),
                            None => return Err(format!("option '--{full}' requires an argument")),
                        }
                    }
                };
                parsed.options.push((short, value));
                i += 1;
                continue;
            }
            if text.len() > 1 && text.starts_with('-') {
                let cluster: Vec<char> = text[1..].chars().collect();
                let mut k = 0;
                while k < cluster.len() {
                    let c = cluster[k];
                    match self.short_takes_arg(c) {
                        None => return Err(format!("invalid option -- '{c}'")),
                        Some(false) => parsed.options.push((c, None)),
                        Some(true) => {
                            let rest: String = cluster[k + 1..].iter().collect();
                            let value = if !rest.is_empty() {
                                rest
                            } else {
                                i += 1;
                                match args.get(i).and_then(|a| a.to_str()) {
                                    Some(v) => v.to_string(),
                                    None => return Err(format!("option requires an argument -- '{c}'")),
                                }
                            };
                            parsed.options.push((c, Some(value)));
                            break;
                        }
                    }
                    k += 1;
                }
                i += 1;
                continue;
            }
            // An operand.
            if !permute {
                parsed.operands.extend_from_slice(&args[i..]);
                return Ok(());
            }
            parsed.operands.push(arg.clone());
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    // The specifications of the modes that use this parser.
    const TINI: Spec<'static> = super::super::tini::SPEC;
    const DUMB: Spec<'static> = super::super::dumb_init::SPEC;

    #[test]
    fn permutation_takes_options_from_anywhere_before_double_dash() {
        let p = TINI.parse(&args(&["echo", "hi", "-l"]));
        assert_eq!(p.options, [('l', None)]);
        assert_eq!(p.operands, args(&["echo", "hi"]));
        let p = TINI.parse(&args(&["-sv", "-e", "3", "-e4", "--", "sh", "-c", "exit 3"]));
        assert_eq!(p.options, [('s', None), ('v', None), ('e', Some("3".into())), ('e', Some("4".into()))]);
        assert_eq!(p.operands, args(&["sh", "-c", "exit 3"]));
    }

    #[test]
    fn plus_stops_at_the_first_operand() {
        let p = DUMB.parse(&args(&["-c", "echo", "hi", "-v"]));
        assert_eq!(p.options, [('c', None)]);
        assert_eq!(p.operands, args(&["echo", "hi", "-v"]));
    }

    #[test]
    fn long_options_take_values_and_abbreviations() {
        let p = DUMB.parse(&args(&["--rewrite=15:3", "--rewrite", "1:0", "--sing", "x"]));
        assert_eq!(p.options, [('r', Some("15:3".into())), ('r', Some("1:0".into())), ('c', None)]);
        let err = |a: &[&str], spec: &Spec<'_>| spec.parse(&args(a)).error;
        assert_eq!(
            err(&["--ver", "x"], &DUMB).as_deref(),
            Some("option '--ver' is ambiguous; possibilities: '--verbose' '--version'")
        );
    }

    #[test]
    fn errors_use_glibc_wording_and_keep_the_options_before_them() {
        let err = |a: &[&str], spec: &Spec<'_>| spec.parse(&args(a)).error;
        assert_eq!(err(&["-x"], &TINI).as_deref(), Some("invalid option -- 'x'"));
        assert_eq!(err(&["-e"], &TINI).as_deref(), Some("option requires an argument -- 'e'"));
        assert_eq!(err(&["--nope"], &DUMB).as_deref(), Some("unrecognized option '--nope'"));
        assert_eq!(err(&["--help=1"], &DUMB).as_deref(), Some("option '--help' doesn't allow an argument"));
        assert_eq!(err(&["--rewrite"], &DUMB).as_deref(), Some("option '--rewrite' requires an argument"));
        let p = TINI.parse(&args(&["-h", "-x"]));
        assert_eq!((p.options, p.error.as_deref()), (vec![('h', None)], Some("invalid option -- 'x'")));
    }
}
