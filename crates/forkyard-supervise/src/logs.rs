//! A service's output as lines, and its log file.
//!
//! Why this module exists: the supervisor is the only writer to its standard output (see
//! `output`), so it must cut each service's byte stream into whole lines itself, whatever
//! the sizes of the service's writes and of its own reads: [`Lines`]. A line longer than
//! [`MAX_LINE`] is passed on in pieces; output that ends without a newline is passed on when
//! the pipe closes. Optional per-service files get the same lines,
//! rotated by size; the supervisor writes them as root in directories a service may control,
//! so [`LogFile`] trusts no name it finds there (no links followed, the opened file checked).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The longest line kept whole; longer ones are written in pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;

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
///
/// The supervisor writes these as root, in directories that the service's own user may be
/// able to write. So no name is trusted: a file is opened without following a link at its
/// name (`O_NOFOLLOW`), then checked through the open descriptor (a regular file, one name
/// only, owned by root, by us or by the service's user) before a byte is written; rotation
/// renames names and creates the new file exclusively. Whoever can write the directory can
/// still delete or rename the logs, but cannot make the supervisor write anywhere else.
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    keep: u32,
    owner: Option<u32>,
}

impl LogFile {
    /// Opens (appending) or creates (mode 0640) the file at `path`, to be rotated past `max`
    /// bytes keeping `keep` old files (`keep = 0`: the file is emptied instead). `owner` is the
    /// uid the service runs as when it is not ours: a file it owns is accepted too.
    ///
    /// Refused, with an error naming the path: a symbolic link at `path`, anything but a
    /// regular file, a file with more than one hard link, a file owned by anyone else.
    pub fn open(path: PathBuf, max: u64, keep: u32, owner: Option<u32>) -> io::Result<LogFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Missing directories are created, following links on the way like any path:
            // O_NOFOLLOW guards the file's own name only. A directory on the path that
            // someone else can replace is not protected against (they could point it at
            // another directory, where a file of this name that passes the checks would be
            // written to); keep the parents of log directories writable by root alone.
            std::fs::create_dir_all(dir).map_err(|e| annotate(&path, "cannot create its directory", e))?;
        }
        let file = open_checked(&path, Create::IfMissing, owner)?;
        let size = file.metadata().map_err(|e| annotate(&path, "cannot read its size", e))?.len();
        Ok(LogFile { path, file, size, max: max.max(1), keep, owner })
    }

    /// Appends one line, rotating first if it would not fit.
    ///
    /// When rotation fails, the line is still written (to the file as it is), the rotation's
    /// error returned, and rotation tried again once the file has grown by `max` again.
    pub fn line(&mut self, text: &[u8]) -> io::Result<()> {
        let rotated =
            if self.size > 0 && self.size + text.len() as u64 + 1 > self.max { self.rotate() } else { Ok(()) };
        let mut line = Vec::with_capacity(text.len() + 1);
        line.extend_from_slice(text);
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| annotate(&self.path, "cannot write", e))?;
        self.size += line.len() as u64;
        rotated
    }

    /// Opens the path again, with the same checks, and writes there from now on: the file
    /// was moved away (logrotate's convention, on SIGUSR1). On error the current file is kept.
    pub fn reopen(&mut self) -> io::Result<()> {
        let file = open_checked(&self.path, Create::IfMissing, self.owner)?;
        self.size = file.metadata().map_err(|e| annotate(&self.path, "cannot read its size", e))?.len();
        self.file = file;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        // Whatever happens, the current file is then written to until it is full again,
        // rather than rotated at every line.
        self.size = 0;
        if self.keep == 0 {
            // Emptied through the open descriptor: whatever is at the name now is not ours
            // to truncate.
            return self.file.set_len(0).map_err(|e| annotate(&self.path, "cannot empty it", e));
        }
        // Removals and renames act on the names themselves: a link planted at one of them is
        // deleted or moved, never followed. Old files that are missing are not an error.
        let name = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(name(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        match std::fs::rename(&self.path, name(1)) {
            Ok(()) => {}
            // Moved away by someone else already: start the new file all the same.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(annotate(&self.path, &format!("cannot rename it to {}", name(1).display()), e)),
        }
        self.file = open_checked(&self.path, Create::New, self.owner)?;
        Ok(())
    }
}

/// How [`open_checked`] creates the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Create {
    /// Opens the file there, or creates it.
    IfMissing,
    /// Creates it; anything already at the name (a file, a link) is an error.
    New,
}

/// Opens `path` for appending without following a link at its name, then checks what was
/// opened (see [`LogFile`]); a refused file is closed.
fn open_checked(path: &Path, create: Create, owner: Option<u32>) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    // O_NONBLOCK: a FIFO planted at the name fails at once (ENXIO, no reader) instead of
    // blocking the loop until one comes; a regular file ignores it. O_NOCTTY: a terminal is
    // never made ours. O_CLOEXEC is std's default.
    options.append(true).mode(0o640).custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK);
    match create {
        Create::IfMissing => options.create(true),
        Create::New => options.create_new(true),
    };
    let file = options.open(path).map_err(|e| open_error(path, e))?;
    let meta = file.metadata().map_err(|e| annotate(path, "cannot inspect it", e))?;
    let refuse = |kind, why: String| Err(io::Error::new(kind, format!("log file {}: {why}", path.display())));
    if !meta.file_type().is_file() {
        return refuse(
            io::ErrorKind::InvalidInput,
            "is not a regular file; forkyard writes logs to regular files only".into(),
        );
    }
    if meta.nlink() > 1 {
        return refuse(
            io::ErrorKind::PermissionDenied,
            format!(
                "has {} hard links; forkyard writes only to a log file with no other name (remove the other links)",
                meta.nlink()
            ),
        );
    }
    let uid = meta.uid();
    if uid != 0 && uid != rustix::process::geteuid().as_raw() && Some(uid) != owner {
        return refuse(
            io::ErrorKind::PermissionDenied,
            format!(
                "is owned by uid {uid}, neither root, forkyard nor the service's user; remove it or change its owner"
            ),
        );
    }
    Ok(file)
}

fn open_error(path: &Path, e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP)
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    {
        return io::Error::new(
            e.kind(),
            format!(
                "log file {} is a symbolic link; forkyard does not follow links for log files (name the file itself)",
                path.display()
            ),
        );
    }
    if e.kind() == io::ErrorKind::AlreadyExists {
        return annotate(path, "something else created it while it was being rotated; not written to", e);
    }
    annotate(path, "cannot open", e)
}

fn annotate(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("log file {}: {what}: {e}", path.display()))
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
    fn files_rotate_by_size_keeping_n() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("web.log");
        let mut f = LogFile::open(path.clone(), 10, 2, None).expect("open");
        for line in ["aaaa", "bbbb", "cccc", "dddd", "eeee"] {
            f.line(line.as_bytes()).expect("write");
        }
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(&path), "eeee\n");
        assert_eq!(read(&dir.path().join("web.log.1")), "cccc\ndddd\n");
        assert_eq!(read(&dir.path().join("web.log.2")), "aaaa\nbbbb\n");
        assert!(!dir.path().join("web.log.3").exists());
    }

    fn read(p: &std::path::Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn is_root() -> bool {
        let root = rustix::process::geteuid().is_root();
        if !root {
            eprintln!("skipped: changing a file's owner needs root");
        }
        root
    }

    #[test]
    fn a_symbolic_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("shadow");
        std::fs::write(&target, "secret\n").expect("write");
        let path = dir.path().join("web.log");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let e = LogFile::open(path.clone(), 1000, 2, None).err().expect("a link was opened");
        let text = e.to_string();
        assert!(text.contains(&path.display().to_string()) && text.contains("is a symbolic link"), "{text}");
        assert_eq!(read(&target), "secret\n");
        // A dangling link is not followed to create its target either.
        let missing = dir.path().join("created-through-the-link");
        std::fs::remove_file(&path).expect("rm");
        std::os::unix::fs::symlink(&missing, &path).expect("symlink");
        assert!(LogFile::open(path, 1000, 2, None).is_err());
        assert!(!missing.exists());
    }

    #[test]
    fn a_hard_link_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let other = dir.path().join("other");
        std::fs::write(&other, "other\n").expect("write");
        let path = dir.path().join("web.log");
        std::fs::hard_link(&other, &path).expect("link");
        let e = LogFile::open(path, 1000, 2, None).err().expect("a hard link was opened");
        assert!(e.to_string().contains("has 2 hard links"), "{e}");
        assert_eq!(read(&other), "other\n");
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("web.log");
        rustix::fs::mknodat(rustix::fs::CWD, &path, rustix::fs::FileType::Fifo, 0o600.into(), 0).expect("mkfifo");
        // Opened on a thread: if the open blocked (waiting for a reader), this thread would
        // be stuck for good, and the test would say so instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(LogFile::open(path, 1000, 2, None).map(drop)));
        let opened = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("opening a FIFO blocked");
        let e = opened.expect_err("a FIFO was opened");
        assert!(e.to_string().contains("web.log"), "{e}");
    }

    #[test]
    fn a_file_of_another_user_is_refused_unless_it_is_the_service_user() {
        if !is_root() {
            return;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("web.log");
        std::fs::write(&path, "theirs\n").expect("write");
        std::os::unix::fs::chown(&path, Some(12345), Some(12345)).expect("chown");
        let e = LogFile::open(path.clone(), 1000, 2, None).err().expect("someone else's file was opened");
        assert!(e.to_string().contains("owned by uid 12345"), "{e}");
        assert!(LogFile::open(path.clone(), 1000, 2, Some(54321)).is_err());
        let mut f = LogFile::open(path.clone(), 1000, 2, Some(12345)).expect("the service's own file");
        f.line(b"ours").expect("write");
        assert_eq!(read(&path), "theirs\nours\n");
    }

    #[test]
    fn rotation_does_not_write_through_a_link_at_an_old_name() {
        for keep in [1, 2] {
            let dir = tempfile::tempdir().expect("tmp");
            let target = dir.path().join("shadow");
            std::fs::write(&target, "secret\n").expect("write");
            let path = dir.path().join("web.log");
            std::os::unix::fs::symlink(&target, dir.path().join("web.log.1")).expect("symlink");
            let mut f = LogFile::open(path.clone(), 10, keep, None).expect("open");
            for line in ["aaaa", "bbbb", "cccc"] {
                f.line(line.as_bytes()).expect("write");
            }
            assert_eq!(read(&target), "secret\n", "keep = {keep}");
            let old = dir.path().join("web.log.1");
            assert!(std::fs::symlink_metadata(&old).expect("web.log.1").file_type().is_file(), "keep = {keep}");
            assert_eq!(read(&old), "aaaa\nbbbb\n");
            assert_eq!(read(&path), "cccc\n");
        }
    }

    #[test]
    fn keep_0_empties_the_open_file_and_never_the_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("web.log");
        let mut f = LogFile::open(path.clone(), 10, 0, None).expect("open");
        f.line(b"aaaa").expect("write");
        f.line(b"bbbb").expect("write");
        f.line(b"cccc").expect("write");
        assert_eq!(read(&path), "cccc\n");
        // Someone moves the file away and plants a link at its name: emptying it at the next
        // rotation must not truncate the link's target.
        let moved = dir.path().join("moved.log");
        std::fs::rename(&path, &moved).expect("rename");
        let target = dir.path().join("shadow");
        std::fs::write(&target, "secret\n").expect("write");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        f.line(b"dddd").expect("write");
        f.line(b"eeee").expect("write");
        assert_eq!(read(&target), "secret\n");
        assert_eq!(read(&moved), "eeee\n");
    }

    #[test]
    fn reopen_writes_to_a_new_file_after_the_old_one_was_moved() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("web.log");
        let mut f = LogFile::open(path.clone(), 1000, 2, None).expect("open");
        f.line(b"before").expect("write");
        let moved = dir.path().join("web.log-20260101");
        std::fs::rename(&path, &moved).expect("rename");
        f.line(b"still there").expect("write");
        f.reopen().expect("reopen");
        f.line(b"after").expect("write");
        assert_eq!(read(&moved), "before\nstill there\n");
        assert_eq!(read(&path), "after\n");
        // The same checks as at open: a link planted at the name is refused, and the file
        // in use is kept.
        std::fs::rename(&path, dir.path().join("web.log-20260102")).expect("rename");
        std::os::unix::fs::symlink(&moved, &path).expect("symlink");
        let e = f.reopen().expect_err("reopened through a link");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        f.line(b"kept").expect("write");
        assert_eq!(read(&dir.path().join("web.log-20260102")), "after\nkept\n");
        assert_eq!(read(&moved), "before\nstill there\n");
    }
}
