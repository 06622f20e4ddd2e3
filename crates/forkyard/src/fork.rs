//! `fork`, and running a closure in a forked child to get its typed result back.
//!
//! Why this module exists: `fork` is the seed's first lesson ("returns 0 in the child and the
//! child's PID in the parent") and the riskiest call in Unix. This module offers it raw
//! (`unsafe`, with the rules spelled out) and wrapped: [`run_in_child`] runs a closure in a
//! child, sends the result back over a close-on-exec pipe, and turns every way the child can
//! fail (panic, signal, early exit, a result that does not decode) into an error, with the
//! child always collected.
//!
//! The result travels as chunks (`u32` length + bytes, up to 64 KiB each) ended by a zero
//! length, so the parent can tell a complete result from one cut short by the child's death.
//! A result that fits in the pipe is written at once and the parent sleeps only on the
//! child's pidfd: one wake-up per call, as for a bare `fork` + `waitpid`. A larger result is
//! announced on an eventfd first; the parent then reads while the child streams it.

use std::any::Any;
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::child::Child;
use crate::error::{Error, Result};
use crate::pid::Pid;
use crate::status::ExitStatus;
use crate::sys;

/// Which side of a [`fork`] we are on.
///
/// ```
/// use forkyard::{ExitStatus, Fork};
///
/// // SAFETY: a doc-test is single-threaded; the child ends with exit_child at once.
/// match unsafe { forkyard::fork() }? {
///     Fork::Child => forkyard::exit_child(7),
///     Fork::Parent(mut child) => assert_eq!(child.wait()?, ExitStatus::Exited(7)),
/// }
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Debug)]
pub enum Fork {
    /// We are the parent; here is the new child.
    Parent(Child),
    /// We are the child.
    Child,
}

/// Forks the calling process.
///
/// The child is a copy of the parent's memory (later writes on either side are not seen by
/// the other) with only the calling thread. In the parent, the returned [`Child`] holds a
/// pidfd for it where the kernel has them. Standard output is **not** flushed: call
/// `std::io::stdout().flush()` first, or text buffered before the fork is printed twice.
///
/// # Safety
///
/// In the child, until it calls `exec` or [`exit_child`]:
/// - if the parent had other threads, the child may only make **async-signal-safe** calls
///   (`write`, `read`, `close`, `dup2`, `execve`, `_exit`, ...): no allocation, no locks
///   (`println!` takes stdout's lock), no `std::thread`; another thread may have held any
///   of those at the moment of the fork, and it does not exist in the child to release them;
/// - the child must end with [`exit_child`] (`_exit`) or `exec`, never by returning from
///   `main` or unwinding out of it, or it runs the parent's destructors and `atexit`
///   handlers a second time (flushing the same buffers, deleting the same temporary files).
///
/// ```
/// use forkyard::{ExitStatus, Fork};
///
/// // SAFETY: a doc-test is single-threaded; the child makes one system call and _exits.
/// match unsafe { forkyard::fork() }? {
///     Fork::Child => {
///         // SAFETY: getppid has no preconditions.
///         let parent_is_alive = unsafe { libc::getppid() } > 1;
///         forkyard::exit_child(if parent_is_alive { 0 } else { 1 })
///     }
///     Fork::Parent(mut child) => assert_eq!(child.wait()?, ExitStatus::Exited(0)),
/// }
/// # Ok::<(), forkyard::Error>(())
/// ```
pub unsafe fn fork() -> Result<Fork> {
    // Collect dropped children now rather than after the fork: it takes a lock, and pages
    // written after a fork are copied.
    crate::child::reap_dropped_children();
    // SAFETY: the caller upholds the rules above for the child's side.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Error::last_os("fork", "a new child process")),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(Child::fresh(
            Pid::new(pid)
                .ok_or_else(|| Error::sys("fork", "a new child process", io::ErrorKind::InvalidData.into()))?,
        ))),
    }
}

/// Ends the calling process at once with `code`, without running destructors, `atexit`
/// handlers or flushing stdio buffers: the right way for a forked child to finish.
///
/// ```
/// use forkyard::{ExitStatus, Fork};
///
/// // SAFETY: a doc-test is single-threaded; the child ends at once, skipping destructors.
/// match unsafe { forkyard::fork() }? {
///     Fork::Child => forkyard::exit_child(3),
///     Fork::Parent(mut child) => assert_eq!(child.wait()?, ExitStatus::Exited(3)),
/// }
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn exit_child(code: i32) -> ! {
    // SAFETY: exit_group ends every thread of the process at once and never returns; it is
    // what _exit does, reached through syscall() so a child touches one libc page fewer.
    unsafe { libc::syscall(libc::SYS_exit_group, code) };
    // SAFETY: unreachable in practice; _exit is the portable fallback and never returns.
    unsafe { libc::_exit(code) }
}

/// What the child sends back.
#[derive(Serialize, Deserialize)]
enum Outcome<T> {
    Value(T),
    Panicked(String),
}

/// Chunk header that ends a result.
const END: u32 = 0;
/// Chunk header that announces "the result could not be encoded", followed by a message.
const ENCODE_FAILED: u32 = u32::MAX;
/// Largest chunk the child writes when streaming.
const CHUNK: usize = 64 * 1024;
/// Results up to this size (framing included) travel through buffers on the two stacks.
/// After a fork, every page either process writes costs a fault, so the common case touches
/// no heap at all, and the buffers are small so the frames holding them stay within the
/// stack pages already in use.
const SMALL: usize = 1024;
/// What any Linux pipe holds at the least (one page): one write of this size never blocks
/// on an empty pipe.
const PIPE_MIN: usize = 4096;

/// A buffer on the stack that is written before it is read, so it is never zeroed: zeroing
/// would touch every page of it, and after a fork each page touched costs a fault.
struct StackBuf {
    bytes: [MaybeUninit<u8>; SMALL],
    len: usize,
}

impl StackBuf {
    fn new() -> StackBuf {
        StackBuf { bytes: [MaybeUninit::uninit(); SMALL], len: 0 }
    }

    fn room(&self) -> usize {
        SMALL - self.len
    }

    /// Appends as much of `data` as fits in [`StackBuf::room`].
    fn extend(&mut self, data: &[u8]) {
        let n = data.len().min(self.room());
        // SAFETY: `n` bytes fit between `len` and `SMALL`, inside the array; the source is a
        // valid slice that cannot overlap our own array.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.bytes.as_mut_ptr().add(self.len).cast(), n) };
        self.len += n;
    }

    /// The bytes written so far.
    fn filled(&mut self) -> &mut [u8] {
        // SAFETY: the first `len` bytes have been written by `extend` or by the kernel.
        unsafe { std::slice::from_raw_parts_mut(self.bytes.as_mut_ptr().cast(), self.len) }
    }

    /// One `read(2)` into the free room; returns the bytes added.
    fn read_from(&mut self, fd: BorrowedFd<'_>) -> io::Result<usize> {
        let room = self.room();
        // SAFETY: the room is `room` writable bytes inside the array; the kernel initialises
        // the `n` it reports, which is all we then count as filled.
        let n = unsafe { sys::read_raw(fd, self.bytes.as_mut_ptr().add(self.len).cast(), room)? };
        self.len += n;
        Ok(n)
    }
}

/// Runs `f` in a forked child and returns its result.
///
/// This is the seed's `task(id)` in a child, with the answer brought back: the closure sees a
/// copy of the parent's memory, its side effects on memory stay in the child, and its return
/// value is serialized (postcard) over a close-on-exec pipe.
///
/// - A panic in the closure comes back as [`Error::ChildPanicked`] with the panic message.
/// - Death by a signal comes back as [`Error::ChildKilled`] with that signal.
/// - A child that exits without a result gives [`Error::ChildExitedEarly`], and a result
///   that does not decode gives [`Error::BadResult`].
///
/// **When this process ignores `SIGCHLD`** (`SIG_IGN`, common in servers, or `SA_NOCLDWAIT`),
/// the kernel collects the child itself and discards its exit status. The result still comes
/// back, since it travels through the pipe: a complete result is returned, and a panic is
/// still [`Error::ChildPanicked`]. What is lost is the exit status: a child that ends without
/// a result gives [`Error::ChildLost`] (killed or exited, unknown), and a child killed just
/// after delivering its whole result counts as a success.
///
/// In every case the child has been collected when this returns; no zombie is left. The
/// child ends with `_exit`, so the parent's destructors and exit handlers never run twice.
/// Standard output is flushed before the fork (so buffered text is not printed twice) and
/// again in the child when the closure returns. The child gets `SIGKILL` if the parent dies
/// first (`PR_SET_PDEATHSIG`), so it is never left behind as an orphan.
///
/// The value's `Serialize` runs in the child and its `Deserialize` in the parent.
///
/// Refuses with [`Error::MultiThreaded`] when this process has more than one thread; see
/// [`run_in_child_unchecked`].
///
/// ```
/// use forkyard::Error;
///
/// assert_eq!(forkyard::run_in_child(|| "from the child".to_string())?, "from the child");
/// match forkyard::run_in_child(|| -> u8 { panic!("no") }) {
///     Err(Error::ChildPanicked { message, .. }) => assert_eq!(message, "no"),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn run_in_child<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T,
    T: Serialize + DeserializeOwned,
{
    ensure_single_threaded()?;
    // SAFETY: the process has one thread, so nothing the child inherits can be locked by a
    // thread that does not exist in it.
    unsafe { run_in_child_unchecked(f) }
}

/// Fails with [`Error::MultiThreaded`] unless the calling process has exactly one thread.
///
/// ```
/// use forkyard::fork::ensure_single_threaded;
///
/// ensure_single_threaded()?; // a doc-test's main thread is alone
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let other = std::thread::spawn(move || rx.recv());
/// assert!(matches!(ensure_single_threaded(), Err(forkyard::Error::MultiThreaded { threads: 2 })));
/// drop(tx);
/// let _ = other.join();
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn ensure_single_threaded() -> Result<()> {
    let threads = crate::procs::thread_count()?;
    if threads > 1 { Err(Error::MultiThreaded { threads }) } else { Ok(()) }
}

/// [`run_in_child`] without the thread check.
///
/// # Safety
///
/// If the process has other threads, none of them may hold, at the moment of the fork, a
/// lock that the closure or the result's serialization takes: the allocator's, stdout's, or
/// any `Mutex` the closure touches. (The child has only the calling thread, so such a lock
/// would never be released.) In practice: the other threads are idle and own no locks, for
/// instance parked on a channel.
///
/// ```
/// // SAFETY: the process has one thread here, so no lock can be held by a missing thread.
/// let answer = unsafe { forkyard::run_in_child_unchecked(|| 42) }?;
/// assert_eq!(answer, 42);
/// # Ok::<(), forkyard::Error>(())
/// ```
pub unsafe fn run_in_child_unchecked<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T,
    T: Serialize + DeserializeOwned,
{
    // Non-blocking on both ends: the parent never waits on the pipe itself (it sleeps on the
    // child's pidfd), and the child polls when a large result fills it.
    let (read_end, write_end) =
        sys::pipe_with(libc::O_NONBLOCK).map_err(|e| Error::sys("pipe2", "the result pipe of a closure child", e))?;
    let big = sys::eventfd().map_err(|e| Error::sys("eventfd", "a closure child", e))?;
    // Text left in stdout's buffer would be printed by both processes. (Standard error is
    // unbuffered in Rust.)
    let _ = io::stdout().flush();
    let parent = Pid::this();
    // SAFETY: the caller guarantees what the child may safely do; the child below runs the
    // closure, writes to the pipe and always ends with _exit.
    match unsafe { fork() }? {
        Fork::Child => child_side(parent, f, read_end, write_end, big),
        Fork::Parent(child) => {
            drop(write_end);
            collect(child, read_end, big)
        }
    }
}

/// The child's side of a closure child: runs `f`, sends its outcome through the pipe, and
/// ends with `_exit`. Shared by the blocking and the async parents.
#[inline]
pub(crate) fn child_side<T, F>(parent: Pid, f: F, read_end: OwnedFd, write_end: OwnedFd, big: OwnedFd) -> !
where
    F: FnOnce() -> T,
    T: Serialize,
{
    // The read end is left open: exit closes it, and a close() here would cost the
    // child a fault on one more code page (see `sys::child_write_all`).
    std::mem::forget(read_end);
    let code = match catch_unwind(AssertUnwindSafe(|| {
        die_with_parent(parent);
        let outcome = match catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => Outcome::Value(value),
            Err(payload) => Outcome::Panicked(panic_message(payload.as_ref())),
        };
        send(write_end.as_fd(), big.as_fd(), &outcome)
    })) {
        Ok(Ok(())) => 0,
        Ok(Err(_)) => 1,
        Err(_) => 101,
    };
    let _ = io::stdout().flush();
    exit_child(code)
}

/// Asks for SIGKILL when the parent dies, then checks the parent did not die already.
fn die_with_parent(parent: Pid) {
    // Through syscall() rather than the prctl and getppid wrappers: each distinct libc page a
    // forked child executes costs it a page fault (see `sys::child_write_all`).
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; no memory is passed.
    unsafe { libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    // SAFETY: getppid takes no arguments and cannot fail.
    if unsafe { libc::syscall(libc::SYS_getppid) } as i32 != parent.as_raw() {
        exit_child(1);
    }
}

/// The text of a panic payload (`panic!` with a literal or with `format!` arguments).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_string()
    }
}

/// Child side: sends `outcome` as chunks and the end marker (or the encode-failure record).
///
/// A result that fits in the pipe goes out in one write at the end (gathered on the stack
/// when it is small), so the parent need not wake before the child has ended. A larger one
/// is announced on `big`, so that the parent starts reading, and streamed.
fn send<T: Serialize>(fd: BorrowedFd<'_>, big: BorrowedFd<'_>, outcome: &Outcome<T>) -> io::Result<()> {
    let mut stack = StackBuf::new();
    stack.extend(&[0; 4]);
    let mut writer = ChunkWriter { fd, big, small: &mut stack, spill: None, announced: false, failed: None };
    let encoded = postcard::serialize_with_flavor(outcome, &mut writer);
    if let Some(e) = writer.failed.take() {
        return Err(e);
    }
    writer.finish(encoded)
}

/// Gathers the encoded result: on the stack while it is small, then in chunks of at most
/// [`CHUNK`] bytes, each with its length first.
struct ChunkWriter<'a> {
    fd: BorrowedFd<'a>,
    big: BorrowedFd<'a>,
    /// A 4-byte header slot, then the bytes of a small result.
    small: &'a mut StackBuf,
    /// Once the result has outgrown `small`: the chunk being filled (header slot first).
    spill: Option<Vec<u8>>,
    /// Whether the parent has been told to read as we write.
    announced: bool,
    /// A write that failed while postcard was encoding (postcard's errors cannot carry it).
    failed: Option<io::Error>,
}

/// Writes a chunk's length into its header slot; false if the chunk is empty (a zero length
/// would read as the end marker).
fn seal(chunk: &mut [u8]) -> bool {
    let len = (chunk.len() - 4) as u32;
    chunk[..4].copy_from_slice(&len.to_le_bytes());
    len > 0
}

impl ChunkWriter<'_> {
    fn finish(mut self, encoded: postcard::Result<()>) -> io::Result<()> {
        let failure = encoded.err().map(|e| {
            let message = e.to_string();
            let mut record = ENCODE_FAILED.to_le_bytes().to_vec();
            record.extend_from_slice(&(message.len() as u32).to_le_bytes());
            record.extend_from_slice(message.as_bytes());
            record
        });
        match (self.spill.take(), failure) {
            (None, None) => {
                // The common case: header, result and end marker in one write, no heap.
                let start = if seal(self.small.filled()) { 0 } else { 4 };
                self.small.extend(&END.to_le_bytes());
                sys::child_write_all(self.fd, &self.small.filled()[start..])
            }
            (spill, failure) => {
                let mut last = spill.unwrap_or_else(|| self.small.filled().to_vec());
                if !seal(&mut last) {
                    last.clear();
                }
                match failure {
                    Some(record) => last.extend_from_slice(&record),
                    None => last.extend_from_slice(&END.to_le_bytes()),
                }
                // Every pipe holds at least a page; ask for the real capacity only when the
                // result is larger (it is less than 64 KiB when this user has many pipes).
                if !self.announced
                    && last.len() > PIPE_MIN
                    && last.len() > sys::pipe_capacity(self.fd).unwrap_or(PIPE_MIN)
                {
                    self.announce()?;
                }
                sys::child_write_all(self.fd, &last)
            }
        }
    }

    /// Tells the parent to start reading: the result will not fit in the pipe.
    fn announce(&mut self) -> io::Result<()> {
        self.announced = true;
        sys::child_write_all(self.big, &1u64.to_ne_bytes())
    }
}

impl ChunkWriter<'_> {
    /// Sends a full chunk. A full chunk is more than a pipe holds, so the parent is told to
    /// read as we write first.
    fn send_chunk(&mut self) -> io::Result<()> {
        if !self.announced {
            self.announce()?;
        }
        let Some(chunk) = self.spill.as_mut() else { return Ok(()) };
        seal(chunk);
        sys::child_write_all(self.fd, chunk)?;
        chunk.truncate(4);
        Ok(())
    }
}

/// postcard writes straight into the stack buffer, then into chunks: no `io::Write` layers
/// (which cost a call per byte of a `Vec<u8>`), and little code for the child to run.
impl postcard::ser_flavors::Flavor for &mut ChunkWriter<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        // Room is kept for the 4-byte end marker.
        if self.spill.is_none() && self.small.room() > 4 {
            self.small.extend(&[byte]);
            return Ok(());
        }
        self.try_extend(&[byte])
    }

    fn try_extend(&mut self, mut data: &[u8]) -> postcard::Result<()> {
        if self.spill.is_none() {
            if data.len() + 4 <= self.small.room() {
                self.small.extend(data);
                return Ok(());
            }
            let mut chunk = Vec::with_capacity(CHUNK + 4);
            chunk.extend_from_slice(self.small.filled());
            self.spill = Some(chunk);
        }
        while !data.is_empty() {
            let Some(chunk) = self.spill.as_mut() else { return Ok(()) };
            let n = data.len().min(CHUNK + 4 - chunk.len());
            chunk.extend_from_slice(&data[..n]);
            data = &data[n..];
            if chunk.len() == CHUNK + 4 {
                if let Err(e) = self.send_chunk() {
                    self.failed = Some(e);
                    return Err(postcard::Error::SerializeBufferFull);
                }
            }
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// What arrived on the pipe, once reassembled.
enum Received<'a> {
    /// The whole result.
    Complete(&'a [u8]),
    /// The child said it could not encode its result.
    EncodeFailed(String),
    /// The stream stopped before its end marker.
    CutShort,
}

/// Where the parent gathered the child's bytes.
enum Gathered {
    /// The stack buffer.
    Stack,
    /// A streamed or medium-sized result.
    Heap(Vec<u8>),
}

/// Parent side: reads everything the child sends, collects the child, and decides.
fn collect<T: DeserializeOwned>(mut child: Child, read_end: OwnedFd, big: OwnedFd) -> Result<T> {
    let pid = child.pid();
    let mut stack = StackBuf::new();
    let gathered = match receive(&child, &read_end, &big, &mut stack) {
        Ok(g) => g,
        Err(e) => {
            // Whatever went wrong with the pipe, do not leave the child behind.
            let _ = child.kill(crate::signal::Signal::KILL);
            let _ = child.wait();
            return Err(Error::sys("read", format!("the result pipe of child {pid}"), e));
        }
    };
    // With SIGCHLD ignored the kernel reaps the child itself and its status is lost (ECHILD);
    // the result came through the pipe, so it is still good.
    let status = match child.wait() {
        Ok(status) => Some(status),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
        Err(e) => return Err(e),
    };
    let mut heap;
    let raw: &mut [u8] = match gathered {
        Gathered::Stack => stack.filled(),
        Gathered::Heap(v) => {
            heap = v;
            &mut heap
        }
    };
    decide(pid, raw, status)
}

/// Turns what the child sent, and how it ended (`None`: unknown, SIGCHLD being ignored), into
/// the closure's result or the error that says why there is none.
pub(crate) fn decide<T: DeserializeOwned>(pid: Pid, raw: &mut [u8], status: Option<ExitStatus>) -> Result<T> {
    match parse_chunks(raw) {
        Received::Complete(bytes) => match postcard::take_from_bytes::<Outcome<T>>(bytes) {
            Ok((Outcome::Panicked(message), _)) => Err(Error::ChildPanicked { pid, message }),
            Ok((Outcome::Value(value), rest)) if rest.is_empty() && status.is_none_or(|s| s.success()) => Ok(value),
            Ok((Outcome::Value(_), rest)) if !rest.is_empty() => Err(Error::BadResult {
                pid,
                reason: format!(
                    "{} bytes were left over after the value (do both sides use the same type?)",
                    rest.len()
                ),
            }),
            Ok(_) => Err(ended_without_result(pid, status)),
            Err(e) => Err(Error::BadResult { pid, reason: format!("{e} (do both sides use the same type?)") }),
        },
        Received::EncodeFailed(message) => {
            Err(Error::BadResult { pid, reason: format!("the child could not encode it: {message}") })
        }
        Received::CutShort => Err(ended_without_result(pid, status)),
    }
}

fn ended_without_result(pid: Pid, status: Option<ExitStatus>) -> Error {
    match status {
        Some(status @ ExitStatus::Signaled { signal, .. }) => Error::ChildKilled { pid, status, signal },
        Some(status @ ExitStatus::Exited(_)) => Error::ChildExitedEarly { pid, status },
        None => Error::ChildLost { pid },
    }
}

/// Receives what the child sends. With a pidfd, sleeps on it and on `big` only: a result
/// that fits in the pipe is there when the child has ended; a larger one is read as it
/// streams. (The pipe is non-blocking, so a grandchild holding its write end cannot make a
/// read hang.)
fn receive(child: &Child, read_end: &OwnedFd, big: &OwnedFd, stack: &mut StackBuf) -> io::Result<Gathered> {
    let Some(pidfd) = child.pidfd() else { return read_stream(child, read_end, Vec::new()).map(Gathered::Heap) };
    let mut fds = [
        libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: big.as_raw_fd(), events: libc::POLLIN, revents: 0 },
    ];
    while fds[0].revents == 0 && fds[1].revents == 0 {
        sys::poll(&mut fds, None)?;
    }
    if fds[1].revents != 0 {
        return read_stream(child, read_end, Vec::new()).map(Gathered::Heap);
    }
    // The child has ended, so everything it wrote is in the pipe; one read takes it all when
    // it fits.
    match stack.read_from(read_end.as_fd()) {
        Ok(n) if n < SMALL => return Ok(Gathered::Stack),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Gathered::Stack),
        Err(e) => return Err(e),
    }
    let mut data = stack.filled().to_vec();
    drain(read_end, &mut data)?;
    Ok(Gathered::Heap(data))
}

/// Reads what the pipe holds now; true at end of file.
fn drain(read_end: &OwnedFd, data: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        if data.len() == data.capacity() {
            data.reserve(CHUNK);
        }
        match sys::read_spare(read_end.as_fd(), data) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

/// Reads the pipe until end of file, or, with a pidfd, until the child has ended and the
/// pipe is drained: a grandchild that inherited the write end cannot make us hang.
fn read_stream(child: &Child, read_end: &OwnedFd, mut data: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut child_ended = false;
    loop {
        if drain(read_end, &mut data)? || child_ended {
            return Ok(data);
        }
        let mut fds = [
            libc::pollfd { fd: read_end.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: child.pidfd().map_or(-1, |fd| fd.as_raw_fd()), events: libc::POLLIN, revents: 0 },
        ];
        sys::poll(&mut fds, None)?;
        child_ended = fds[1].revents != 0;
    }
}

/// Reassembles the chunks in place and returns the result's bytes.
fn parse_chunks(raw: &mut [u8]) -> Received<'_> {
    let (mut read, mut write) = (0, 0);
    loop {
        let Some(header) = raw.get(read..read + 4) else { return Received::CutShort };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        read += 4;
        match len {
            END => return Received::Complete(&raw[..write]),
            ENCODE_FAILED => {
                let Some(len) = raw.get(read..read + 4) else { return Received::CutShort };
                let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
                let text = raw.get(read + 4..read + 4 + len).unwrap_or(&raw[read + 4..]);
                return Received::EncodeFailed(String::from_utf8_lossy(text).into_owned());
            }
            len => {
                let len = len as usize;
                if raw.len() < read + len {
                    return Received::CutShort;
                }
                raw.copy_within(read..read + len, write);
                read += len;
                write += len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_reassemble_and_truncation_is_detected() {
        let mut raw = Vec::new();
        for part in [&b"hello "[..], b"world"] {
            raw.extend_from_slice(&(part.len() as u32).to_le_bytes());
            raw.extend_from_slice(part);
        }
        let mut complete = raw.clone();
        complete.extend_from_slice(&END.to_le_bytes());
        assert!(matches!(parse_chunks(&mut complete), Received::Complete(p) if p == b"hello world"));
        assert!(matches!(parse_chunks(&mut raw.clone()), Received::CutShort));
        let cut = raw.len() - 2;
        assert!(matches!(parse_chunks(&mut raw[..cut]), Received::CutShort));
        assert!(matches!(parse_chunks(&mut []), Received::CutShort));
        let mut failed = ENCODE_FAILED.to_le_bytes().to_vec();
        failed.extend_from_slice(&4u32.to_le_bytes());
        failed.extend_from_slice(b"oops");
        assert!(matches!(parse_chunks(&mut failed), Received::EncodeFailed(m) if m == "oops"));
    }

    #[test]
    fn panic_messages_are_recovered_from_both_payload_kinds() {
        let literal: Box<dyn Any + Send> = Box::new("static text");
        let formatted: Box<dyn Any + Send> = Box::new(format!("item {}", 7));
        assert_eq!(panic_message(literal.as_ref()), "static text");
        assert_eq!(panic_message(formatted.as_ref()), "item 7");
    }
}
