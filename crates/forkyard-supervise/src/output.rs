//! The supervisor's standard output: every service's lines, prefixed, written without ever
//! blocking the loop, in bounded memory.
//!
//! Why this module exists: the most repeated requests to supervisord are a name in front of
//! each line (#553) and lines that do not interleave (#1326); and a supervisor whose output
//! is a pipe nobody reads (`forkyard up | sleep 1000`), or a slow terminal, must still
//! restart a crashed service and obey SIGTERM. So the loop only *composes* lines (timestamp,
//! padded and coloured name, text) into a buffer, and a writer thread does the blocking
//! writes. The loop asks [`Output::has_room`] before it reads more from a service; past
//! [`HIGH_WATER`] bytes queued it stops reading, the services' pipes fill up and their
//! writes block, as under a slow terminal, while supervision goes on. When the writer has
//! brought the queue down to [`LOW_WATER`], it wakes the loop through an eventfd.
//!
//! The supervisor's own messages are rarely many, but a crash loop under a stalled output
//! could make them so: past [`HARD_LIMIT`] they are counted instead of kept, and the count
//! is reported once there is room again.
//!
//! Setting `O_NONBLOCK` on standard output would do without the thread, but the flag belongs
//! to the open file description, shared with the shell that started us (a terminal left
//! non-blocking breaks the next program that uses it); a thread changes nothing outside.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Past this many bytes queued, the loop stops reading the services' output.
pub const HIGH_WATER: usize = 1 << 20;
/// The writer wakes a waiting loop once the queue is down to this.
pub const LOW_WATER: usize = HIGH_WATER / 2;
/// Past this, the supervisor's own messages are counted, not kept.
pub const HARD_LIMIT: usize = 4 * HIGH_WATER;

/// Colours for service names, by unit index (the supervisor's own name is bold).
const COLOURS: [&str; 6] = ["\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m"];
const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";

/// What the loop and the writer share.
struct Queue {
    chunks: VecDeque<Vec<u8>>,
    /// Emptied buffers, handed back for reuse (at most a few).
    spare: Vec<Vec<u8>>,
    /// The loop waits for room: wake it when the queue is down to [`LOW_WATER`].
    wake_at_low: bool,
    closing: bool,
    /// The writer has exited.
    done: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    more: Condvar,
    finished: Condvar,
    /// Bytes queued and not yet written (read without the lock by the loop).
    queued: AtomicUsize,
    /// Readable when the loop may read services again.
    room: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic in the writer (there is no code that panics) must not take the loop with
        // it: the data is plain bytes, valid whatever happened.
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How lines are prefixed.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    /// Colour the names (on a terminal).
    pub colour: bool,
    /// Start every line with the time of day (UTC, to the millisecond).
    pub timestamps: bool,
    /// Pad names to this width.
    pub width: usize,
}

/// The supervisor's standard output (see the module documentation).
pub struct Output {
    pending: Vec<u8>,
    /// The prefix of the current batch's lines (see [`Output::start_batch`]).
    batch: Vec<u8>,
    style: Style,
    shared: Arc<Shared>,
    dropped: u64,
}

impl Output {
    /// An output writing to `sink` (standard output, or any descriptor) from a thread of its
    /// own.
    pub fn new(sink: OwnedFd, style: Style) -> io::Result<Output> {
        let room =
            rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK)?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                chunks: VecDeque::new(),
                spare: Vec::new(),
                wake_at_low: false,
                closing: false,
                done: false,
            }),
            more: Condvar::new(),
            finished: Condvar::new(),
            queued: AtomicUsize::new(0),
            room,
        });
        let writer = Arc::clone(&shared);
        std::thread::Builder::new().name("forkyard-output".into()).spawn(move || write_loop(&writer, &sink))?;
        let style = Style { width: style.width.max("forkyard".len()), ..style };
        Ok(Output { pending: Vec::with_capacity(64 * 1024), batch: Vec::new(), style, shared, dropped: 0 })
    }

    /// A descriptor that becomes readable when there is room again after
    /// [`Output::wait_for_room`]; drain it with [`Output::clear_room`].
    pub fn room_fd(&self) -> BorrowedFd<'_> {
        self.shared.room.as_fd()
    }

    /// Bytes composed or queued and not yet written.
    pub fn backlog(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire) + self.pending.len()
    }

    /// Whether the loop may read more from the services.
    pub fn has_room(&self) -> bool {
        self.backlog() < HIGH_WATER
    }

    /// Asks to be woken (through [`Output::room_fd`]) once the backlog is down to
    /// [`LOW_WATER`]. Returns false if it already is (no wake-up will come: go on).
    pub fn wait_for_room(&mut self) -> bool {
        self.flush();
        let mut q = self.shared.lock();
        if self.shared.queued.load(Ordering::Acquire) <= LOW_WATER {
            return false;
        }
        q.wake_at_low = true;
        true
    }

    /// Reads the wake-up of [`Output::room_fd`].
    pub fn clear_room(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.shared.room, &mut buf);
    }

    /// The width names are padded to.
    pub fn width(&self) -> usize {
        self.style.width
    }

    /// How many of the supervisor's messages were dropped since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// A line of a service's output (without its newline); `index` picks the colour.
    pub fn line(&mut self, name: &str, index: usize, text: &[u8]) {
        compose_prefix(&mut self.pending, &self.style, name, COLOURS[index % COLOURS.len()]);
        self.pending.extend_from_slice(text);
        self.pending.push(b'\n');
    }

    /// Starts a batch of lines of one service read at the same moment: their prefix
    /// (timestamp included) is composed once, here, for every [`Output::batch_line`] after it.
    pub fn start_batch(&mut self, name: &str, index: usize) {
        self.batch.clear();
        compose_prefix(&mut self.batch, &self.style, name, COLOURS[index % COLOURS.len()]);
    }

    /// A line of the batch begun by [`Output::start_batch`] (without its newline).
    pub fn batch_line(&mut self, text: &[u8]) {
        self.pending.reserve(self.batch.len() + text.len() + 1);
        self.pending.extend_from_slice(&self.batch);
        self.pending.extend_from_slice(text);
        self.pending.push(b'\n');
    }

    /// One of the supervisor's own messages (dropped, and counted, past [`HARD_LIMIT`]).
    pub fn event(&mut self, text: &str) {
        if self.backlog() >= HARD_LIMIT {
            self.dropped += 1;
            return;
        }
        compose_prefix(&mut self.pending, &self.style, "forkyard", BOLD);
        self.pending.extend_from_slice(text.as_bytes());
        self.pending.push(b'\n');
    }

    /// Hands what was composed to the writer (once per turn of the loop).
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut q = self.shared.lock();
        let next = q.spare.pop().unwrap_or_default();
        let chunk = std::mem::replace(&mut self.pending, next);
        self.shared.queued.fetch_add(chunk.len(), Ordering::AcqRel);
        q.chunks.push_back(chunk);
        drop(q);
        self.shared.more.notify_one();
    }

    /// Writes out what is left, waiting at most `patience` while the writer makes no
    /// progress (a reader that never reads must not keep `up` from exiting).
    pub fn finish(&mut self, patience: Duration) {
        self.flush();
        let mut q = self.shared.lock();
        q.closing = true;
        self.shared.more.notify_one();
        let mut last = self.shared.queued.load(Ordering::Acquire);
        while !q.done {
            let (guard, timeout) =
                self.shared.finished.wait_timeout(q, patience).unwrap_or_else(std::sync::PoisonError::into_inner);
            q = guard;
            let now = self.shared.queued.load(Ordering::Acquire);
            if timeout.timed_out() && now == last {
                break;
            }
            last = now;
        }
    }
}

/// The writer thread: blocking writes of whole chunks, in order. A closed or failing output
/// (EPIPE: the reader is gone) drops what comes: the services keep running.
fn write_loop(shared: &Shared, sink: &OwnedFd) {
    let mut broken = false;
    loop {
        let mut q = shared.lock();
        while q.chunks.is_empty() && !q.closing {
            q = shared.more.wait(q).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        let Some(mut chunk) = q.chunks.pop_front() else {
            q.done = true;
            drop(q);
            shared.finished.notify_all();
            return;
        };
        drop(q);
        if !broken && write_all(sink.as_fd(), &chunk).is_err() {
            broken = true;
        }
        let left = shared.queued.fetch_sub(chunk.len(), Ordering::AcqRel) - chunk.len();
        let mut q = shared.lock();
        if left <= LOW_WATER && q.wake_at_low {
            q.wake_at_low = false;
            let _ = rustix::io::write(&shared.room, &1u64.to_ne_bytes());
        }
        if q.spare.len() < 2 && chunk.capacity() <= 2 * HIGH_WATER {
            chunk.clear();
            q.spare.push(chunk);
        }
        if q.closing {
            shared.finished.notify_all();
        }
    }
}

// Written byte by byte rather than with `write!`, and once per batch rather than per line
// where it can be: a service printing short lines as fast as it can (`yes`: 2-byte lines)
// spent three quarters of the loop's time in `core::fmt` padding the name for every line
// (perf; 13 MB/s through `up`).
/// Appends a line's prefix to `out`: the time of day if asked for, then the name padded to
/// the width (by characters, as `{:<width$}` pads) and coloured if asked for.
fn compose_prefix(out: &mut Vec<u8>, style: &Style, name: &str, colour: &str) {
    if style.timestamps {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = now.as_secs() % 86_400;
        let millis = now.subsec_millis();
        let two =
            |out: &mut Vec<u8>, n: u64| out.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
        two(out, secs / 3600);
        out.push(b':');
        two(out, secs / 60 % 60);
        out.push(b':');
        two(out, secs % 60);
        out.push(b'.');
        out.push(b'0' + (millis / 100 % 10) as u8);
        two(out, u64::from(millis % 100));
        out.push(b' ');
    }
    if style.colour {
        out.extend_from_slice(colour.as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    let chars = if name.is_ascii() { name.len() } else { name.chars().count() };
    out.resize(out.len() + style.width.saturating_sub(chars), b' ');
    if style.colour {
        out.extend_from_slice(b" |");
        out.extend_from_slice(RESET.as_bytes());
        out.push(b' ');
    } else {
        out.extend_from_slice(b" | ");
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pipe() -> (std::fs::File, OwnedFd) {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe");
        (std::fs::File::from(r), w)
    }

    #[test]
    fn lines_are_prefixed_aligned_and_coloured_only_when_asked() {
        let (mut r, w) = pipe();
        let mut o = Output::new(w, Style { colour: false, timestamps: false, width: 5 }).expect("output");
        o.line("web", 0, b"hello");
        o.event("started");
        o.finish(Duration::from_secs(5));
        drop(o);
        let mut text = String::new();
        r.read_to_string(&mut text).expect("read");
        assert_eq!(text, "web      | hello\nforkyard | started\n");

        let (mut r, w) = pipe();
        let mut o = Output::new(w, Style { colour: true, timestamps: false, width: 3 }).expect("output");
        o.line("web", 0, b"x");
        o.finish(Duration::from_secs(5));
        drop(o);
        let mut text = Vec::new();
        r.read_to_end(&mut text).expect("read");
        assert!(text.starts_with(b"\x1b[36mweb"), "{text:?}");
    }

    #[test]
    fn the_prefix_pads_by_characters_and_stamps_the_time_of_day() {
        let (mut r, w) = pipe();
        let mut o = Output::new(w, Style { colour: false, timestamps: true, width: 9 }).expect("output");
        o.line("wéb", 0, b"x");
        o.line("a-name-longer-than-the-width", 1, b"y");
        o.finish(Duration::from_secs(5));
        drop(o);
        let mut text = String::new();
        r.read_to_string(&mut text).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text:?}");
        for (line, rest) in
            lines.iter().zip([format!("{:<9} | x", "wéb"), "a-name-longer-than-the-width | y".to_string()])
        {
            let (stamp, after) = line.split_at(13);
            assert_eq!(after, rest, "{line:?}");
            let b = stamp.as_bytes();
            let digits = [0, 1, 3, 4, 6, 7, 9, 10, 11];
            assert!(digits.iter().all(|&i| b[i].is_ascii_digit()), "{stamp:?}");
            assert_eq!((b[2], b[5], b[8], b[12]), (b':', b':', b'.', b' '), "{stamp:?}");
            let (h, m, s) = (&stamp[0..2], &stamp[3..5], &stamp[6..8]);
            assert!(h < "24" && m < "60" && s < "60", "{stamp:?}");
        }
    }

    #[test]
    fn a_reader_that_never_reads_fills_the_queue_but_never_blocks_the_caller() {
        let (r, w) = pipe();
        let mut o = Output::new(w, Style { colour: false, timestamps: false, width: 4 }).expect("output");
        let line = vec![b'x'; 1000];
        let mut written = 0;
        // Everything here returns at once although nobody reads: the pipe holds 64 KiB and
        // the writer thread is stuck in write(2).
        while o.has_room() {
            o.line("spam", 0, &line);
            o.flush();
            written += 1;
        }
        assert!(written > 100 && o.backlog() >= HIGH_WATER, "{written} lines, {} bytes queued", o.backlog());
        assert!(o.wait_for_room(), "the backlog is above the low mark: a wake-up will come");
        // The supervisor's own messages are bounded too.
        for _ in 0..HARD_LIMIT / 10 {
            o.event("a message");
        }
        assert!(o.backlog() <= HARD_LIMIT + 100, "{}", o.backlog());
        assert!(o.take_dropped() > 0);
        // Once someone reads, the wake-up comes and every line arrives whole.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut r = r;
            r.read_to_end(&mut all).map(|_| all)
        });
        let mut poll = [rustix::event::PollFd::new(&o.shared.room, rustix::event::PollFlags::IN)];
        let ready = rustix::event::poll(&mut poll, None).expect("poll");
        assert_eq!(ready, 1);
        o.clear_room();
        o.finish(Duration::from_secs(5));
        drop(o);
        let all = reader.join().expect("reader").expect("read");
        let text = String::from_utf8_lossy(&all);
        let lines: Vec<&str> = text.lines().collect();
        // Names are padded to the width of "forkyard".
        assert_eq!(lines.iter().filter(|l| l.starts_with("spam     | ")).count(), written);
        let whole = |l: &&str| l.starts_with("spam     | x") && l.len() == 1011 || l.starts_with("forkyard | ");
        assert!(lines.iter().all(whole));
    }

    #[test]
    fn finishing_gives_up_on_a_reader_that_never_reads() {
        let (r, w) = pipe();
        let mut o = Output::new(w, Style { colour: false, timestamps: false, width: 4 }).expect("output");
        for _ in 0..200 {
            o.line("spam", 0, &[b'y'; 1000]);
        }
        // Returns although 200 kB cannot be written to a pipe nobody reads.
        o.finish(Duration::from_millis(50));
        drop(r);
    }

    #[test]
    fn a_closed_reader_drops_output_without_harm() {
        let (r, w) = pipe();
        drop(r);
        let mut o = Output::new(w, Style { colour: false, timestamps: false, width: 4 }).expect("output");
        for _ in 0..1000 {
            o.line("gone", 0, b"nobody reads this");
            o.flush();
        }
        o.finish(Duration::from_secs(5));
    }
}
