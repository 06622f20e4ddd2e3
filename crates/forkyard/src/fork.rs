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
//! length, so the parent can tell a complete result from one cut short by the child's death,
//! and a large result is streamed rather than copied whole.

use std::any::Any;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{Child, ExitStatus, Pid, sys};

/// Which side of a [`fork`] we are on.
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
pub unsafe fn fork() -> Result<Fork> {
    // SAFETY: the caller upholds the rules above for the child's side.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(Error::last_os("fork", "a new child process")),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(Child::fresh(Pid::new(pid).ok_or_else(
            || {
                Error::sys(
                    "fork",
                    "a new child process",
                    io::ErrorKind::InvalidData.into(),
                )
            },
        )?))),
    }
}

/// Ends the calling process at once with `code`, without running destructors, `atexit`
/// handlers or flushing stdio buffers: the right way for a forked child to finish.
pub fn exit_child(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
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
/// Largest chunk the child writes.
const CHUNK: usize = 64 * 1024;

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
/// In every case the child has been collected when this returns; no zombie is left. The
/// child ends with `_exit`, so the parent's destructors and exit handlers never run twice.
/// Standard output and error are flushed before the fork (so buffered text is not printed
/// twice) and again in the child when the closure returns. The child gets `SIGKILL` if the
/// parent dies first (`PR_SET_PDEATHSIG`), so it is never left behind as an orphan.
///
/// Refuses with [`Error::MultiThreaded`] when this process has more than one thread; see
/// [`run_in_child_unchecked`].
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
pub fn ensure_single_threaded() -> Result<()> {
    let threads =
        sys::thread_count().map_err(|e| Error::sys("read", "/proc/self/status (Threads:)", e))?;
    if threads > 1 {
        Err(Error::MultiThreaded { threads })
    } else {
        Ok(())
    }
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
pub unsafe fn run_in_child_unchecked<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T,
    T: Serialize + DeserializeOwned,
{
    let (read_end, write_end) =
        sys::pipe().map_err(|e| Error::sys("pipe2", "the result pipe of a closure child", e))?;
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let parent = Pid::this();
    // SAFETY: the caller guarantees what the child may safely do; the child below runs the
    // closure, writes to the pipe and always ends with _exit.
    match unsafe { fork() }? {
        Fork::Child => {
            drop(read_end);
            let code = match catch_unwind(AssertUnwindSafe(|| {
                die_with_parent(parent);
                let outcome = match catch_unwind(AssertUnwindSafe(f)) {
                    Ok(value) => Outcome::Value(value),
                    Err(payload) => Outcome::Panicked(panic_message(payload.as_ref())),
                };
                send(write_end.as_fd(), &outcome)
            })) {
                Ok(Ok(())) => 0,
                Ok(Err(_)) => 1,
                Err(_) => 101,
            };
            let _ = io::stdout().flush();
            let _ = io::stderr().flush();
            exit_child(code)
        }
        Fork::Parent(child) => {
            drop(write_end);
            collect(child, read_end)
        }
    }
}

/// Asks for SIGKILL when the parent dies, then checks the parent did not die already.
fn die_with_parent(parent: Pid) {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; no memory is passed.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if Pid::parent() != parent {
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

/// Child side: streams `outcome` as chunks, then the end marker (or the encode-failure
/// record).
fn send<T: Serialize>(fd: BorrowedFd<'_>, outcome: &Outcome<T>) -> io::Result<()> {
    let mut writer = ChunkWriter {
        fd,
        buf: Vec::with_capacity(CHUNK + 4),
    };
    writer.buf.extend_from_slice(&[0; 4]);
    match postcard::to_io(outcome, &mut writer) {
        Ok(_) => {
            writer.flush()?;
            sys::write_all(fd, &END.to_le_bytes())
        }
        Err(e) => {
            writer.flush()?;
            let message = e.to_string();
            let mut record = ENCODE_FAILED.to_le_bytes().to_vec();
            record.extend_from_slice(&(message.len() as u32).to_le_bytes());
            record.extend_from_slice(message.as_bytes());
            sys::write_all(fd, &record)
        }
    }
}

/// Buffers writes into chunks of at most [`CHUNK`] bytes, each sent with its length first.
struct ChunkWriter<'a> {
    fd: BorrowedFd<'a>,
    /// A 4-byte header slot followed by the chunk's bytes.
    buf: Vec<u8>,
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK + 4 - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK + 4 {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        let len = self.buf.len() - 4;
        if len > 0 {
            self.buf[..4].copy_from_slice(&(len as u32).to_le_bytes());
            sys::write_all(self.fd, &self.buf)?;
            self.buf.truncate(4);
        }
        Ok(())
    }
}

/// What arrived on the pipe.
enum Received {
    /// The whole result, reassembled.
    Complete(Vec<u8>),
    /// The child said it could not encode its result.
    EncodeFailed(String),
    /// The stream stopped before its end marker.
    CutShort,
}

/// Parent side: reads everything the child sends, collects the child, and decides.
fn collect<T: DeserializeOwned>(mut child: Child, read_end: OwnedFd) -> Result<T> {
    let pid = child.pid();
    let raw = match read_all(&child, &read_end) {
        Ok(raw) => raw,
        Err(e) => {
            // Whatever went wrong with the pipe, do not leave the child behind.
            let _ = child.kill(crate::Signal::KILL);
            let _ = child.wait();
            return Err(Error::sys(
                "read",
                format!("the result pipe of child {pid}"),
                e,
            ));
        }
    };
    let status = child.wait()?;
    match (parse_chunks(&raw), status) {
        (Received::Complete(bytes), _) => match postcard::take_from_bytes::<Outcome<T>>(&bytes) {
            Ok((Outcome::Panicked(message), _)) => Err(Error::ChildPanicked { pid, message }),
            Ok((Outcome::Value(value), rest)) if rest.is_empty() && status.success() => Ok(value),
            Ok((Outcome::Value(_), rest)) if !rest.is_empty() => Err(Error::BadResult {
                pid,
                reason: format!(
                    "{} bytes were left over after the value (do both sides use the same type?)",
                    rest.len()
                ),
            }),
            Ok(_) => Err(ended_without_result(pid, status)),
            Err(e) => Err(Error::BadResult {
                pid,
                reason: format!("{e} (do both sides use the same type?)"),
            }),
        },
        (Received::EncodeFailed(message), _) => Err(Error::BadResult {
            pid,
            reason: format!("the child could not encode it: {message}"),
        }),
        (Received::CutShort, status) => Err(ended_without_result(pid, status)),
    }
}

fn ended_without_result(pid: Pid, status: ExitStatus) -> Error {
    match status {
        ExitStatus::Signaled { signal, .. } => Error::ChildKilled {
            pid,
            status,
            signal,
        },
        ExitStatus::Exited(_) => Error::ChildExitedEarly { pid, status },
    }
}

/// Reads the pipe until end of file, or, with a pidfd, until the child has ended and the
/// pipe is drained: a grandchild that inherited the write end cannot make us hang.
fn read_all(child: &Child, read_end: &OwnedFd) -> io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = vec![0u8; CHUNK + 4];
    sys::set_nonblocking(read_end.as_fd(), true)?;
    let mut child_ended = false;
    loop {
        match sys::read(read_end.as_fd(), &mut buf) {
            Ok(0) => return Ok(data),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if child_ended {
                    return Ok(data);
                }
                let mut fds = [
                    libc::pollfd {
                        fd: read_end.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: child.pidfd().map_or(-1, |fd| fd.as_raw_fd()),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                sys::poll(&mut fds, None)?;
                child_ended = fds[1].revents != 0;
            }
            Err(e) => return Err(e),
        }
    }
}

fn parse_chunks(mut raw: &[u8]) -> Received {
    let mut payload = Vec::new();
    loop {
        let Some((header, rest)) = raw.split_first_chunk::<4>() else {
            return Received::CutShort;
        };
        let len = u32::from_le_bytes(*header);
        raw = rest;
        match len {
            END => return Received::Complete(payload),
            ENCODE_FAILED => {
                let Some((len, rest)) = raw.split_first_chunk::<4>() else {
                    return Received::CutShort;
                };
                let len = u32::from_le_bytes(*len) as usize;
                let text = rest.get(..len).unwrap_or(rest);
                return Received::EncodeFailed(String::from_utf8_lossy(text).into_owned());
            }
            len => {
                let len = len as usize;
                let Some(chunk) = raw.get(..len) else {
                    return Received::CutShort;
                };
                payload.extend_from_slice(chunk);
                raw = &raw[len..];
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
        assert!(matches!(parse_chunks(&complete), Received::Complete(p) if p == b"hello world"));
        assert!(matches!(parse_chunks(&raw), Received::CutShort));
        assert!(matches!(
            parse_chunks(&raw[..raw.len() - 2]),
            Received::CutShort
        ));
        assert!(matches!(parse_chunks(&[]), Received::CutShort));
        let mut failed = ENCODE_FAILED.to_le_bytes().to_vec();
        failed.extend_from_slice(&4u32.to_le_bytes());
        failed.extend_from_slice(b"oops");
        assert!(matches!(parse_chunks(&failed), Received::EncodeFailed(m) if m == "oops"));
    }

    #[test]
    fn panic_messages_are_recovered_from_both_payload_kinds() {
        let literal: Box<dyn Any + Send> = Box::new("static text");
        let formatted: Box<dyn Any + Send> = Box::new(format!("item {}", 7));
        assert_eq!(panic_message(literal.as_ref()), "static text");
        assert_eq!(panic_message(formatted.as_ref()), "item 7");
    }
}
