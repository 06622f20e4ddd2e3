//! `.env` files: `KEY=VALUE` lines as the dotenv tools write them.
//!
//! Why this module exists: people copy `.env` files between foreman, docker compose and their
//! own scripts, so forkyard must read them the same way (quotes, `# comments` after a quoted
//! value, `${VAR}` expansion, values spanning lines, `export`). The parsing is `dotenvy`'s,
//! through its iterator, which leaves the process environment alone; this module adds what
//! it lacks for a supervisor's errors: the line and column of a fault.

use std::path::Path;

use super::ConfigError;
use super::model::Position;

/// A fault in a dotenv file: where, and what.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct DotenvError {
    /// 1-based line where the faulty entry starts (or where the fault is, for one line).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what to do.
    pub message: String,
}

/// Reads a dotenv file's text: `KEY=VALUE` lines, `#` comments, an optional `export `,
/// values in single quotes (literal) or double quotes (with `\n`, `\"` and `${VAR}`), across
/// lines while a quote is open, and `${VAR}` or `$VAR` expanded from forkyard's own
/// environment first, then from the lines above (as `dotenvy` does). Values may not hold a
/// NUL byte (no process can receive one).
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, DotenvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // dotenvy refuses a last line that ends in a space without a newline after it; with the
    // newline, the only entry still open at the end is one with an unclosed quote.
    let owned;
    let text = if text.is_empty() || text.ends_with('\n') {
        text
    } else {
        owned = format!("{text}\n");
        owned.as_str()
    };
    let mut out = Vec::new();
    for item in dotenvy::Iter::new(text.as_bytes()) {
        match item {
            Ok((key, value)) => {
                if value.contains('\0') {
                    let line = text.find('\0').map_or(1, |at| text[..at].matches('\n').count() + 1);
                    return Err(DotenvError {
                        line,
                        column: 1,
                        message: format!("the value of {key} contains a NUL byte, which no environment can hold"),
                    });
                }
                out.push((key, value));
            }
            Err(_) => return Err(locate(text)),
        }
    }
    Ok(out)
}

/// Reads the dotenv file at `path`, with errors naming it and `service` (when one asked for
/// it). A file that cannot be read is the caller's to word (it knows which key named it).
pub(super) fn parse_env_at(
    path: &Path,
    text: &str,
    service: Option<&str>,
) -> Result<Vec<(String, String)>, ConfigError> {
    parse_env_file(text).map_err(|e| ConfigError {
        file: path.display().to_string(),
        line: e.line,
        column: e.column,
        service: service.map(str::to_string),
        message: e.message,
    })
}

/// Whether `lines`, starting where an entry starts, parse as whole entries.
fn parses(lines: &[&str]) -> bool {
    dotenvy::Iter::new(lines.concat().as_bytes()).all(|item| item.is_ok())
}

/// Finds the first faulty entry of a text that `dotenvy` refused, and says what is wrong.
///
/// `dotenvy` names the faulty text but not its line, and an entry may span lines, so the
/// lines are fed again from the last entry known good: the fault's entry starts just after
/// the longest run of lines that parse. (Only on an error, so the quadratic worst case, an
/// unclosed quote near the top of a long file, costs nothing on a good file.)
fn locate(text: &str) -> DotenvError {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut start = 0;
    for end in 1..=lines.len() {
        if parses(&lines[start..end]) {
            start = end;
        }
    }
    let first_line = start + 1;
    let entry = lines[start..].concat();
    let first = lines.get(start).map_or("", |l| l.trim_end_matches(['\n', '\r']));
    let (offset, message) = match dotenvy::Iter::new(entry.as_bytes()).find_map(Result::err) {
        Some(dotenvy::Error::LineParse(faulty, index)) => explain(&entry, first, &faulty, index),
        // Reading from memory, only a parse error can happen; say something useful anyway.
        Some(other) => (0, format!("cannot read this line ({other}): expected KEY=VALUE")),
        None => (0, format!("expected KEY=VALUE, found '{}'", first.trim())),
    };
    let before = &entry[..offset.min(entry.len())];
    let line = first_line + before.matches('\n').count();
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    DotenvError { line, column, message }
}

/// The byte offset in `entry` of a fault `dotenvy` reported as `index` into `faulty`, and
/// the message for it.
fn explain(entry: &str, first: &str, faulty: &str, index: usize) -> (usize, String) {
    // An open quote at the end of the text: the reader hands back everything it took in
    // (with its last newline, which a complete entry loses).
    if faulty == entry && index >= faulty.len() {
        let quote = first.find('=').and_then(|eq| first[eq..].find(['"', '\'']).map(|q| eq + q)).unwrap_or(0);
        return (quote, "a quote opened here is never closed: close it, or escape it with \\".to_string());
    }
    // A fault in the name or the `=`: the index is in bytes into the whole entry.
    if entry.starts_with(faulty) {
        return (index.min(entry.len()), format!("expected KEY=VALUE, found '{}'", first.trim()));
    }
    // A fault in the value: the index is in characters into the value.
    let eq = entry.find('=').map_or(0, |e| e + 1);
    let value_at = entry[eq..].find(faulty).map_or(eq, |v| eq + v);
    let at = entry[value_at..].char_indices().nth(index).map_or(entry.len(), |(i, _)| value_at + i);
    let key = first.split('=').next().unwrap_or("").trim().trim_start_matches("export ").trim();
    let found = entry[at..].chars().next().map(|c| format!(" at '{c}'")).unwrap_or_default();
    (
        at,
        format!(
            "the value of {key} cannot be read{found}: quote a value that has spaces or special characters \
             ({key}=\"a b\"), and write \\\\ for a backslash"
        ),
    )
}

/// The `.env` file in `dir`, if there is one: forkyard.toml and Procfile both read it.
/// Errors are reported against `config` (the file that led here), at line 1.
pub(super) fn read_beside(config: &Path, dir: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let path = dir.join(".env");
    match std::fs::read_to_string(&path) {
        Ok(text) => parse_env_at(&path, &text, None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ConfigError::at(
            config,
            Position { line: 1, column: 1 },
            None,
            format!(
                "{} cannot be read: {} (it is read for every service: fix its permissions, or remove it)",
                path.display(),
                forkyard::error::strerror(&e)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn dotenv_files_parse() {
        let env =
            parse_env_file("# c\nA=1\nexport B=\"two words\\n\"\nC='x # y'\nD=plain # comment\n\nE=\n").expect("valid");
        assert_eq!(env, pairs(&[("A", "1"), ("B", "two words\n"), ("C", "x # y"), ("D", "plain"), ("E", "")]));
        let err = parse_env_file("A=1\nnot a pair\n").expect_err("not a pair");
        assert_eq!((err.line, err.message.as_str()), (2, "expected KEY=VALUE, found 'not a pair'"));
    }

    #[test]
    fn a_comment_after_a_quoted_value_is_not_part_of_it() {
        let env = parse_env_file("KEY=\"a b\" # comment\nSINGLE='c d'   # another\n").expect("valid");
        assert_eq!(env, pairs(&[("KEY", "a b"), ("SINGLE", "c d")]));
    }

    #[test]
    fn variables_expand_and_quotes_span_lines() {
        let env = parse_env_file(
            "HOST=db.local\nURL=\"postgres://${HOST}:5432\"\nLITERAL='${HOST}'\nCERT=\"line one\nline two\"\nexport AFTER=ok\n",
        )
        .expect("valid");
        assert_eq!(
            env,
            pairs(&[
                ("HOST", "db.local"),
                ("URL", "postgres://db.local:5432"),
                ("LITERAL", "${HOST}"),
                ("CERT", "line one\nline two"),
                ("AFTER", "ok"),
            ])
        );
    }

    #[test]
    fn errors_give_the_line_number() {
        // After a value spanning lines 2 and 3, the fault is on line 5 (a blank line between).
        let err = parse_env_file("A=1\nB=\"x\ny\"\n\nC=two words\nD=4\n").expect_err("unquoted space");
        assert_eq!((err.line, err.column), (5, 7), "{err}");
        assert!(err.message.contains("the value of C") && err.message.contains("'w'"), "{err}");

        let err = parse_env_file("A=1\n# note\nB-C=2\n").expect_err("bad name");
        assert_eq!((err.line, err.column), (3, 2), "{err}");
        assert_eq!(err.message, "expected KEY=VALUE, found 'B-C=2'");

        let err = parse_env_file("A=1\nB=\"open\nC=3\n").expect_err("unclosed quote");
        assert_eq!((err.line, err.column), (2, 3), "{err}");
        assert!(err.message.contains("never closed"), "{err}");
    }

    #[test]
    fn the_last_line_needs_no_newline() {
        assert_eq!(parse_env_file("A=1\nB=2 ").expect("valid"), pairs(&[("A", "1"), ("B", "2")]));
        let err = parse_env_file("A=1\nNOPE").expect_err("no =");
        assert_eq!((err.line, err.message.as_str()), (2, "expected KEY=VALUE, found 'NOPE'"));
    }

    #[test]
    fn a_nul_byte_in_a_value_is_refused() {
        let err = parse_env_file("A=1\nB=x\0y\n").expect_err("NUL");
        assert_eq!(err.line, 2, "{err}");
        assert!(err.message.contains("NUL"), "{err}");
    }
}
