//! One stream of output for every service: each line prefixed with its service's name.
//!
//! Why this module exists: the most repeated requests to supervisord are a name in front of
//! each line (#553) and lines that do not interleave (#1326). Here the supervisor is the
//! only writer to its standard output; it splits each service's output into lines, composes
//! every line whole (timestamp, padded and coloured name, text) in one buffer, and writes the
//! buffer in one go per turn of its loop, so no line is ever cut by another. A line longer
//! than [`MAX_LINE`] is written in pieces, each with its prefix; output that ends without a
//! newline is written when the pipe closes. Optional per-service files get the same lines,
//! rotated by size.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// The longest line kept whole; longer ones are written in pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// Colours for service names, by unit index (the supervisor's own name is bold).
const COLOURS: [&str; 6] = ["\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m"];
const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

/// The supervisor's standard output.
pub struct Output {
    pending: Vec<u8>,
    colour: bool,
    timestamps: bool,
    width: usize,
}

impl Output {
    /// Lines will be prefixed with names padded to `width`.
    pub fn new(colour: bool, timestamps: bool, width: usize) -> Output {
        Output { pending: Vec::with_capacity(64 * 1024), colour, timestamps, width: width.max("forkyard".len()) }
    }

    fn prefix(&mut self, name: &str, colour: &str) {
        if self.timestamps {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            let secs = now.as_secs() % 86_400;
            let _ = write!(
                self.pending,
                "{:02}:{:02}:{:02}.{:03} ",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                now.subsec_millis()
            );
        }
        if self.colour {
            let _ = write!(self.pending, "{colour}{name:<w$} |{RESET} ", w = self.width);
        } else {
            let _ = write!(self.pending, "{name:<w$} | ", w = self.width);
        }
    }

    /// A line of a service's output (without its newline).
    pub fn line(&mut self, name: &str, index: usize, text: &[u8]) {
        self.prefix(name, COLOURS[index % COLOURS.len()]);
        self.pending.extend_from_slice(text);
        self.pending.push(b'\n');
    }

    /// One of the supervisor's own messages.
    pub fn event(&mut self, args: std::fmt::Arguments<'_>) {
        self.prefix("forkyard", BOLD);
        let _ = self.pending.write_fmt(args);
        self.pending.push(b'\n');
    }

    /// Writes everything pending. A closed output is not an error: the services keep
    /// running, their lines are dropped.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut out = io::stdout().lock();
        let _ = out.write_all(&self.pending);
        let _ = out.flush();
        self.pending.clear();
    }
}

/// Cuts a stream of bytes into lines.
///
/// The lines do not depend on how the stream was cut into reads: a line is its bytes up to a
/// newline, given in pieces of [`MAX_LINE`] when longer; a newline right after such a piece
/// ends that line (it does not make an empty one).
#[derive(Default)]
pub struct Lines {
    /// The start of the current line, always shorter than [`MAX_LINE`].
    partial: Vec<u8>,
    /// The current line has already given a [`MAX_LINE`] piece and nothing since: a newline
    /// now only ends it.
    cut: bool,
}

impl Lines {
    /// Adds bytes; calls `each` for every complete line (and for every [`MAX_LINE`]-sized
    /// piece of a longer one).
    pub fn feed(&mut self, mut data: &[u8], mut each: impl FnMut(&[u8])) {
        while let Some(nl) = data.iter().position(|&b| b == b'\n') {
            let line = &data[..nl];
            if !self.partial.is_empty() {
                self.partial.extend_from_slice(line);
                for piece in self.partial.chunks(MAX_LINE) {
                    each(piece);
                }
                self.partial.clear();
            } else if line.is_empty() {
                if !self.cut {
                    each(&[]);
                }
            } else {
                for piece in line.chunks(MAX_LINE) {
                    each(piece);
                }
            }
            self.cut = false;
            data = &data[nl + 1..];
        }
        if data.is_empty() {
            return;
        }
        // The start of a line: give its whole pieces now, keep the rest.
        self.partial.extend_from_slice(data);
        let whole = self.partial.len() / MAX_LINE * MAX_LINE;
        for piece in self.partial[..whole].chunks(MAX_LINE) {
            each(piece);
        }
        self.partial.drain(..whole);
        self.cut = whole > 0 && self.partial.is_empty();
    }

    /// At end of file: the last line, if it had no newline.
    pub fn finish(&mut self, each: impl FnOnce(&[u8])) {
        if !self.partial.is_empty() {
            each(&self.partial);
            self.partial.clear();
        }
        self.cut = false;
    }
}

/// A service's log file, rotated by size: `web.log` → `web.log.1` → ... → `web.log.N`.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    keep: u32,
}

impl LogFile {
    /// Opens (appending) or creates the file.
    pub fn open(path: PathBuf, max: u64, keep: u32) -> io::Result<LogFile> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(LogFile { path, file, size, max: max.max(1), keep })
    }

    /// Appends one line (rotating first if it would not fit).
    pub fn line(&mut self, text: &[u8]) -> io::Result<()> {
        if self.size > 0 && self.size + text.len() as u64 + 1 > self.max {
            self.rotate()?;
        }
        let mut line = Vec::with_capacity(text.len() + 1);
        line.extend_from_slice(text);
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let name = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.keep == 0 {
            self.file = File::create(&self.path)?;
        } else {
            let _ = std::fs::remove_file(name(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            std::fs::rename(&self.path, name(1))?;
            self.file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut l = Lines::default();
        let mut out = Vec::new();
        for c in chunks {
            l.feed(c, |line| out.push(line.to_vec()));
        }
        l.finish(|line| out.push(line.to_vec()));
        out
    }

    #[test]
    fn lines_are_reassembled_across_reads() {
        assert_eq!(lines_of(&[b"a\nb", b"c\n\nd"]), [b"a".to_vec(), b"bc".to_vec(), vec![], b"d".to_vec()]);
    }

    #[test]
    fn long_lines_come_in_pieces() {
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let mut input = long.clone();
        input.push(b'\n');
        let out = lines_of(&[&input[..100], &input[100..]]);
        assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), [MAX_LINE, MAX_LINE, 5]);
        assert_eq!(out.concat(), long);
    }

    /// Regression: a line of exactly MAX_LINE bytes whose newline came in the next read gave
    /// an extra empty line.
    #[test]
    fn a_newline_right_after_a_full_piece_ends_that_line() {
        let full = vec![b'x'; MAX_LINE];
        assert_eq!(lines_of(&[&full, b"\nnext\n"]), [full.clone(), b"next".to_vec()]);
        assert_eq!(lines_of(&[&full, b"\n", b"\n"]), [full.clone(), vec![]]);
        let mut two = full.repeat(2);
        two.push(b'\n');
        assert_eq!(lines_of(&[&two[..MAX_LINE + 7], &two[MAX_LINE + 7..]]), [full.clone(), full]);
    }

    /// A small deterministic generator (xorshift64*), enough to vary the cuts.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
        }
    }

    #[test]
    fn the_lines_do_not_depend_on_how_the_reads_were_cut() {
        // Lines around the piece size, empty ones, and an unterminated end.
        let mut input = Vec::new();
        let mut boundaries = Vec::new();
        for (i, len) in
            [0, 5, MAX_LINE, 0, MAX_LINE - 1, MAX_LINE + 1, 2 * MAX_LINE, 3, 0, MAX_LINE].into_iter().enumerate()
        {
            let start = input.len();
            input.extend((0..len).map(|k| b'a' + ((i + k) % 26) as u8));
            boundaries.extend((0..=len / MAX_LINE).map(|k| start + k * MAX_LINE));
            input.push(b'\n');
            boundaries.push(input.len());
        }
        input.extend_from_slice(&[b'z'; MAX_LINE + 2]);
        // What it must give, computed apart from `Lines`: each line cut in pieces, an empty
        // line kept, the unterminated end given too.
        let mut expected: Vec<Vec<u8>> = Vec::new();
        for line in input.split(|&b| b == b'\n') {
            if line.is_empty() {
                expected.push(Vec::new());
            } else {
                expected.extend(line.chunks(MAX_LINE).map(<[u8]>::to_vec));
            }
        }
        if input.ends_with(b"\n") {
            expected.pop();
        }
        assert_eq!(lines_of(&[&input]), expected, "read whole");
        // Two reads, cut at every position near a newline or a piece's end.
        for &b in &boundaries {
            for cut in b.saturating_sub(2)..(b + 3).min(input.len()) {
                assert_eq!(lines_of(&[&input[..cut], &input[cut..]]), expected, "cut at {cut}");
            }
        }
        // Many reads, of random sizes from one byte to more than two pieces.
        let mut rng = Rng(0x5EED_F0CC_1A2D_0001);
        for round in 0..2000 {
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let size = match rng.below(3) {
                    0 => 1 + rng.below(8),
                    1 => 1 + rng.below(MAX_LINE + 8),
                    _ => 1 + rng.below(3 * MAX_LINE),
                };
                let end = (at + size).min(input.len());
                chunks.push(&input[at..end]);
                at = end;
            }
            assert_eq!(lines_of(&chunks), expected, "round {round}");
        }
    }

    #[test]
    fn prefixes_align_and_colour_only_when_asked() {
        let mut o = Output::new(false, false, 5);
        o.line("web", 0, b"hello");
        o.event(format_args!("started"));
        assert_eq!(String::from_utf8_lossy(&o.pending), "web      | hello\nforkyard | started\n");
        let mut o = Output::new(true, false, 3);
        o.line("web", 0, b"x");
        assert!(o.pending.starts_with(b"\x1b[36mweb"));
    }

    #[test]
    fn files_rotate_by_size_keeping_n() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("web.log");
        let mut f = LogFile::open(path.clone(), 10, 2).expect("open");
        for line in ["aaaa", "bbbb", "cccc", "dddd", "eeee"] {
            f.line(line.as_bytes()).expect("write");
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "eeee\n");
        assert_eq!(read(&dir.path().join("web.log.1")), "cccc\ndddd\n");
        assert_eq!(read(&dir.path().join("web.log.2")), "aaaa\nbbbb\n");
        assert!(!dir.path().join("web.log.3").exists());
    }
}
