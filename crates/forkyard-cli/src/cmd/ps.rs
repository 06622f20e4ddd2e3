//! `forkyard ps`: the library's /proc snapshot as a table, a tree, a zombie report or JSON.
//!
//! Why it exists: the seed shows zombies with `ps ax | grep`; this shows them with their
//! parent's PID and command beside them, so the process that fails to collect its children
//! is obvious, and it draws the tree that explains who will adopt an orphan.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use forkyard::Pid;
use forkyard::procs::{Process, ScanOptions, Snapshot, TreeEntry};

/// Options of `forkyard ps`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only zombies, each with its parent's PID and command (the parent is the one that
    /// should collect it).
    #[arg(long, short = 'z')]
    zombies: bool,
    /// Draw the process tree.
    #[arg(long, short = 't')]
    tree: bool,
    /// Only this process and its descendants (drawn as a tree).
    #[arg(long, short = 'p', value_name = "PID")]
    pid: Option<i32>,
    /// Print JSON (one array of objects) instead of a table.
    #[arg(long)]
    json: bool,
    /// Leave out the header line.
    #[arg(long)]
    no_header: bool,
}

/// Runs `forkyard ps`. Exits 1 if `--pid` names no process.
pub fn run(args: &Args) -> Result<ExitCode> {
    // A lister forks nothing afterwards, so it may scan on every core. The zombie report
    // needs command lines only for the zombies' parents, read below.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let snap =
        Snapshot::take_with(ScanOptions { cmdline: !args.zombies, threads }).context("taking a snapshot of /proc")?;
    let out = io::stdout().lock();
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let root = match args.pid {
        Some(raw) => {
            let found = Pid::new(raw).and_then(|p| snap.get(p));
            let Some(p) = found else {
                eprintln!("forkyard: no process with PID {raw}");
                return Ok(ExitCode::FAILURE);
            };
            Some(p.pid)
        }
        None => None,
    };
    if args.zombies {
        zombies(&snap, args, &mut out)?;
    } else if args.tree || root.is_some() {
        let entries = match root {
            Some(pid) => snap.tree(pid),
            None => snap.forest(),
        };
        tree(&entries, args, &mut out)?;
    } else {
        let all: Vec<&Process> = snap.processes().iter().collect();
        table(&all, args, &mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// User names looked up through NSS (so LDAP and sssd users are named too), each once;
/// unknown IDs print as numbers.
struct Users(std::cell::RefCell<HashMap<u32, String>>);

impl Users {
    fn load() -> Users {
        Users(std::cell::RefCell::new(HashMap::new()))
    }

    fn name(&self, uid: u32) -> String {
        self.0
            .borrow_mut()
            .entry(uid)
            .or_insert_with(|| match forkyard::users::user_by_uid(uid) {
                Ok(Some(user)) => user.name,
                _ => uid.to_string(),
            })
            .clone()
    }
}

/// The terminal name for a `tty_nr`, as procps prints it (`pts/3`, `tty1`, `ttyS0`, `?`).
fn tty_name(tty_nr: i32) -> String {
    if tty_nr == 0 {
        return "?".into();
    }
    let nr = tty_nr as u32;
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        5 if minor == 0 => "tty".into(),
        5 if minor == 1 => "console".into(),
        _ => format!("{major}:{minor}"),
    }
}

/// The width of the terminal on standard output, if it is one.
fn terminal_width() -> Option<usize> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which is valid; on a
    // non-terminal it fails with ENOTTY and writes nothing.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

/// CPU time as `[[dd-]hh:]mm:ss`, like procps' TIME column.
fn cpu_time(p: &Process) -> String {
    let secs = p.cpu_time().as_secs();
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else if h > 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// One row's cells, before the command column.
fn cells(p: &Process, users: &Users) -> [String; 8] {
    [
        p.pid.to_string(),
        p.ppid.map_or_else(|| "0".into(), |pp| pp.to_string()),
        p.pgid.to_string(),
        p.sid.to_string(),
        tty_name(p.tty_nr),
        p.state.to_string(),
        users.name(p.uid),
        cpu_time(p),
    ]
}

const HEADER: [&str; 8] = ["PID", "PPID", "PGID", "SID", "TTY", "S", "USER", "TIME"];
/// Which columns are numbers (right-aligned, as procps does).
const NUMERIC: [bool; 8] = [true, true, true, true, false, false, false, true];

/// Prints rows with every column as wide as its widest cell.
fn print_rows(rows: &[([String; 8], String)], args: &Args, out: &mut impl Write) -> io::Result<()> {
    let mut width = HEADER.map(str::len);
    for (c, _) in rows {
        for (w, cell) in width.iter_mut().zip(c) {
            *w = (*w).max(cell.len());
        }
    }
    // On a terminal, cut the command at the screen's edge as procps does; in a pipe, keep it
    // whole for grep.
    let room = terminal_width().map(|cols| cols.saturating_sub(width.iter().map(|w| w + 1).sum()));
    let line = |out: &mut dyn Write, c: &[&str; 8], cmd: &str| -> io::Result<()> {
        for (i, cell) in c.iter().enumerate() {
            if NUMERIC[i] {
                write!(out, "{cell:>w$} ", w = width[i])?;
            } else {
                write!(out, "{cell:<w$} ", w = width[i])?;
            }
        }
        match room {
            Some(room) if cmd.chars().count() > room => {
                let cut: String = cmd.chars().take(room).collect();
                writeln!(out, "{cut}")
            }
            _ => writeln!(out, "{cmd}"),
        }
    };
    if !args.no_header {
        line(out, &HEADER, "COMMAND")?;
    }
    for (c, cmd) in rows {
        line(out, &c.each_ref().map(String::as_str), cmd)?;
    }
    Ok(())
}

fn table(procs: &[&Process], args: &Args, out: &mut impl Write) -> Result<()> {
    if args.json {
        // As an io::Error (serde_json keeps its kind), so that a reader gone mid-way (a list
        // longer than the buffer) is the broken pipe `main` treats as success.
        serde_json::to_writer_pretty(&mut *out, procs).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let users = Users::load();
    let rows: Vec<([String; 8], String)> = procs.iter().map(|p| (cells(p, &users), shown_command(p))).collect();
    print_rows(&rows, args, out)?;
    Ok(())
}

fn tree(entries: &[TreeEntry<'_>], args: &Args, out: &mut impl Write) -> Result<()> {
    if args.json {
        #[derive(serde::Serialize)]
        struct Node<'a> {
            depth: usize,
            #[serde(flatten)]
            process: &'a Process,
        }
        let nodes: Vec<Node<'_>> = entries.iter().map(|e| Node { depth: e.depth, process: e.process }).collect();
        serde_json::to_writer_pretty(&mut *out, &nodes).map_err(io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let users = Users::load();
    // Whether each open ancestor level still has siblings to come: decides `│` or blank.
    let mut open: Vec<bool> = Vec::new();
    let mut rows = Vec::with_capacity(entries.len());
    for e in entries {
        open.truncate(e.depth);
        let mut prefix = String::new();
        if e.depth > 0 {
            for &more in &open[1..] {
                prefix.push_str(if more { "│  " } else { "   " });
            }
            prefix.push_str(if e.last { "└─ " } else { "├─ " });
        }
        open.push(!e.last);
        rows.push((cells(e.process, &users), format!("{prefix}{}", shown_command(e.process))));
    }
    print_rows(&rows, args, out)?;
    Ok(())
}

fn zombies(snap: &Snapshot, args: &Args, out: &mut impl Write) -> Result<()> {
    let zombies: Vec<&Process> = snap.zombies().collect();
    // The parents, read again with their command lines (they were scanned without).
    let parents: HashMap<Pid, Process> = zombies
        .iter()
        .filter_map(|z| z.ppid)
        .filter_map(|pp| Process::read(pp).ok().flatten().map(|p| (pp, p)))
        .collect();
    let parent_command = |z: &Process| z.ppid.and_then(|pp| parents.get(&pp)).map(Process::command);
    if !args.json {
        return zombie_table(&zombies, |z| parent_command(z).map(|c| printable(&c, Field::Args)), args, out);
    }
    // JSON escapes control characters itself, so the text goes out as it is.
    #[derive(serde::Serialize)]
    struct Zombie<'a> {
        #[serde(flatten)]
        process: &'a Process,
        parent_command: Option<String>,
    }
    let list: Vec<Zombie<'_>> =
        zombies.iter().map(|z| Zombie { process: z, parent_command: parent_command(z) }).collect();
    serde_json::to_writer_pretty(&mut *out, &list).map_err(io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

fn zombie_table(
    zombies: &[&Process],
    parent_command: impl Fn(&Process) -> Option<String>,
    args: &Args,
    out: &mut impl Write,
) -> Result<()> {
    let w_pid = zombies.iter().map(|z| z.pid.to_string().len()).max().unwrap_or(0).max(3);
    let w_ppid = zombies.iter().map(|z| z.ppid.map_or(1, |p| p.to_string().len())).max().unwrap_or(0).max(4);
    let w_cmd = zombies.iter().map(|z| shown_command(z).chars().count() + 11).max().unwrap_or(0).max(7);
    if !args.no_header {
        writeln!(out, "{:>w_pid$} {:>w_ppid$} {:<w_cmd$} PARENT (which should collect it)", "PID", "PPID", "COMMAND")?;
    }
    for z in zombies {
        let parent = parent_command(z).unwrap_or_else(|| "?".to_string());
        let ppid = z.ppid.map_or_else(|| "0".to_string(), |p| p.to_string());
        let cmd = format!("{} <defunct>", shown_command(z));
        writeln!(out, "{:>w_pid$} {ppid:>w_ppid$} {cmd:<w_cmd$} {parent}", z.pid)?;
    }
    Ok(())
}

/// Which kind of text [`printable`] cleans.
#[derive(Clone, Copy)]
enum Field {
    /// A process name (`comm`).
    Comm,
    /// A command line, its arguments joined by spaces.
    Args,
}

/// A process name or command line made safe for a terminal, as procps 4's `ps` shows them in
/// a UTF-8 locale: every control character becomes `?` (an escape sequence cannot colour the
/// screen, a newline cannot split a row), except that a newline inside a command line shows
/// as a space; text that was not UTF-8 (read as U+FFFD) shows as `?` too. Seen with procps
/// 4.0.2 on a `sh` started with argv[0] `"\x1b[31mred\n)("`: `ps -o args=` printed
/// `?[31mred )( ...`, and `ps -o comm=` printed `?[31mred?)(` for that name set by prctl.
fn printable(text: &str, field: Field) -> String {
    text.chars()
        .map(|c| match c {
            '\n' if matches!(field, Field::Args) => ' ',
            c if c.is_control() || c == char::REPLACEMENT_CHARACTER => '?',
            c => c,
        })
        .collect()
}

/// The COMMAND column: the command line, or `[name]` when there is none, made printable.
fn shown_command(p: &Process) -> String {
    if p.cmdline.is_empty() {
        format!("[{}]", printable(&p.comm, Field::Comm))
    } else {
        printable(&p.command(), Field::Args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_as_procps_shows_them() {
        let name = "\x1b[31mred\n)(\t\x7f\u{9b}";
        assert_eq!(printable(name, Field::Comm), "?[31mred?)(???");
        assert_eq!(printable(name, Field::Args), "?[31mred )(???");
        assert_eq!(printable("caf\u{e9} \u{fffd}", Field::Args), "caf\u{e9} ?");
    }

    #[test]
    fn terminal_names_match_procps() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name((136 << 8) | 3), "pts/3");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
        assert_eq!(tty_name((4 << 8) | 64), "ttyS0");
        assert_eq!(tty_name((5 << 8) | 1), "console");
        // Minor numbers above 255 live in bits 20-31.
        assert_eq!(tty_name((136 << 8) | (1 << 20) | 4), "pts/260");
    }
}
