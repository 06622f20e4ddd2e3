//! A pool of forked worker processes that maps a function over inputs.
//!
//! Why this module exists: it is Python's `multiprocessing.Pool.map` (fork start method)
//! done with the guarantees the rest of forkyard gives: a bound on workers, results in input
//! order, a worker that crashes (a signal, an abort, an `exit`) reported for the one item it
//! was working on while the pool replaces it and carries on, and no hang and no zombie
//! whatever the workers do.
//!
//! How: each worker is forked with the function already in its memory, so only inputs and
//! results cross the process boundary (postcard over two pipes per worker). Inputs go out
//! in chunks (Python's default size: a quarter of an even share per worker) with two chunks
//! in flight per worker, so a worker never waits for the parent between chunks, and the
//! results of a chunk come back in one frame. Before each item a worker stores the item's
//! number in its slot of a shared memory page; if it dies, the slot names the item that
//! killed it, at the cost of a memory store rather than a system call per item. The parent
//! never blocks on a pipe: it polls every worker's result pipe, task pipe (when it has bytes
//! to send) and pidfd in one `poll`.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::child::Child;
use crate::error::{Error, Result};
use crate::fork::{Fork, ensure_single_threaded, exit_child, fork, panic_message};
use crate::pid::Pid;
use crate::signal::Signal;
use crate::status::ExitStatus;
use crate::sys;

/// Why one item of a [`Pool::map`] has no result.
///
/// ```
/// let out = forkyard::pool::map(1, &[0u8, 1], |x: u8| if x == 1 { std::process::abort() } else { x })?;
/// assert_eq!(out[0], Ok(0));
/// assert!(matches!(out[1], Err(forkyard::TaskError::WorkerDied { .. })));
/// # Ok::<(), forkyard::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The function panicked on this item (the worker survived).
    #[error("the function panicked on this item: {0}")]
    Panicked(String),
    /// The worker process died while working on this item.
    #[error("worker {pid} {status} while working on this item")]
    WorkerDied {
        /// The worker.
        pid: Pid,
        /// How it ended.
        status: ExitStatus,
    },
    /// The worker process ended while working on this item, and how is unknown: this process
    /// ignores `SIGCHLD`, so the kernel discarded the worker's exit status.
    #[error(
        "worker {pid} ended while working on this item (how is unknown: this process ignores \
         SIGCHLD, so the kernel discarded its exit status)"
    )]
    WorkerLost {
        /// The worker.
        pid: Pid,
    },
    /// The worker's result for this item could not be encoded or decoded.
    #[error("the result for this item could not be transferred: {0}")]
    BadResult(String),
}

/// What a worker sends back for one item.
#[derive(Serialize, Deserialize)]
enum ItemOutcome<O> {
    Value(O),
    Panicked(String),
    Unencodable(String),
}

struct Worker {
    child: Child,
    /// Its slot in the shared progress page.
    slot: usize,
    /// Parent's end of the task pipe (non-blocking).
    tasks: OwnedFd,
    /// Parent's end of the result pipe (non-blocking).
    results: OwnedFd,
    /// Task bytes not yet accepted by the pipe.
    out: Vec<u8>,
    /// Result bytes not yet forming a whole frame.
    inbuf: Vec<u8>,
    /// Chunks sent to this worker and not yet answered, in the order it answers them.
    in_flight: VecDeque<Vec<u32>>,
}

/// Worker processes running one function; [`Pool::map`] feeds them inputs.
///
/// The workers are forked on the first `map` and reused by later ones; they exit when the
/// pool is dropped. When this process ignores `SIGCHLD`, results still come back (they travel
/// through pipes), but a worker that dies is reported as [`TaskError::WorkerLost`], without
/// the exit status the kernel discarded. The calling process must be single-threaded whenever a worker is forked
/// (see [`crate::run_in_child`] for why).
///
/// ```
/// use forkyard::{Pool, TaskError};
///
/// let mut pool = Pool::new(2, |x: u64| {
///     assert!(x != 3, "three is unlucky");
///     x * x
/// })?;
/// let out = pool.map(&[1, 2, 3, 4])?; // in input order
/// assert_eq!(out[0], Ok(1));
/// assert!(matches!(&out[2], Err(TaskError::Panicked(m)) if m == "three is unlucky"));
/// assert_eq!(out[3], Ok(16));
/// # Ok::<(), forkyard::Error>(())
/// ```
pub struct Pool<I, O> {
    size: usize,
    chunk_size: Option<usize>,
    f: Box<dyn Fn(I) -> O>,
    workers: Vec<Worker>,
    /// One slot per worker: 0 when idle, else 1 + the number of the item it is working on.
    progress: sys::SharedMem,
    _types: PhantomData<fn(I) -> O>,
}

/// Maps `f` over `inputs` in up to `workers` processes: a one-shot [`Pool`].
///
/// ```
/// let lengths = forkyard::pool::map(2, &["a".to_string(), "bcd".to_string()], |s: String| s.len())?;
/// assert_eq!(lengths, [Ok(1), Ok(3)]);
/// # Ok::<(), forkyard::Error>(())
/// ```
pub fn map<I, O>(workers: usize, inputs: &[I], f: impl Fn(I) -> O + 'static) -> Result<Vec<Result<O, TaskError>>>
where
    I: Serialize + DeserializeOwned,
    O: Serialize + DeserializeOwned,
{
    Pool::new(workers, f)?.map(inputs)
}

impl<I, O> Pool<I, O>
where
    I: Serialize + DeserializeOwned,
    O: Serialize + DeserializeOwned,
{
    /// A pool of at most `workers` processes (at least 1) running `f`.
    ///
    /// ```
    /// use forkyard::Pool;
    ///
    /// let mut pool = Pool::new(3, |name: String| name.to_uppercase())?;
    /// assert_eq!(pool.map(&["a".to_string()])?, [Ok("A".to_string())]);
    /// assert!(Pool::new(0, |x: u8| x).is_err()); // at least one worker
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn new(workers: usize, f: impl Fn(I) -> O + 'static) -> Result<Pool<I, O>> {
        if workers == 0 {
            return Err(Error::invalid("a pool of zero workers", "ask for at least one"));
        }
        let progress = sys::SharedMem::new((workers * 4).next_multiple_of(4096))
            .map_err(|e| Error::sys("mmap", "the progress page of a pool", e))?;
        Ok(Pool { size: workers, chunk_size: None, f: Box::new(f), workers: Vec::new(), progress, _types: PhantomData })
    }

    /// Sends inputs to workers `n` at a time instead of the default (a quarter of an even
    /// share per worker, as Python does). Smaller chunks balance uneven work better; larger
    /// ones cost fewer system calls.
    ///
    /// ```
    /// use forkyard::Pool;
    ///
    /// // One item at a time: uneven work spreads best (at one message per item).
    /// let mut pool = Pool::new(2, |ms: u64| ms * 2)?.with_chunk_size(1);
    /// assert_eq!(pool.map(&[5, 1, 3])?, [Ok(10), Ok(2), Ok(6)]);
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn with_chunk_size(mut self, n: usize) -> Pool<I, O> {
        self.chunk_size = Some(n.max(1));
        self
    }

    /// The PIDs of the live workers (none before the first `map`).
    ///
    /// ```
    /// use forkyard::{Pid, Pool};
    ///
    /// let mut pool = Pool::new(2, |_: u8| forkyard::Pid::this())?;
    /// assert!(pool.worker_pids().is_empty()); // forked on the first map
    /// let ran_in = pool.map(&[0, 1, 2, 3])?;
    /// let workers = pool.worker_pids();
    /// assert!(ran_in.iter().all(|pid| workers.contains(pid.as_ref().expect("ran"))));
    /// assert!(!workers.contains(&Pid::this()));
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn worker_pids(&self) -> Vec<Pid> {
        self.workers.iter().map(|w| w.child.pid()).collect()
    }

    /// Applies the function to every input in the workers; returns one result per input, in
    /// input order.
    ///
    /// A panic is reported for its item and the worker carries on. A worker that dies is
    /// reported for the item it was on ([`TaskError::WorkerDied`]); the other items of its
    /// unfinished chunks go to the other workers (an item finished just before the death, but
    /// not yet sent, is computed again), and a replacement is forked. The outer `Err` is for
    /// failures of the pool itself (a fork refused by the kernel, a thread started in this
    /// process).
    ///
    /// ```
    /// use forkyard::{Pool, Signal, TaskError};
    ///
    /// let mut pool = Pool::new(2, |x: i32| {
    ///     if x < 0 {
    ///         std::process::abort(); // this worker dies; the pool replaces it
    ///     }
    ///     x + 1
    /// })?;
    /// let out = pool.map(&[1, -1, 2])?;
    /// assert_eq!((&out[0], &out[2]), (&Ok(2), &Ok(3)));
    /// assert!(matches!(out[1], Err(TaskError::WorkerDied { status, .. }) if status.signal() == Some(Signal::ABRT)));
    /// assert_eq!(pool.map(&[10])?, [Ok(11)]); // and it carries on
    /// # Ok::<(), forkyard::Error>(())
    /// ```
    pub fn map(&mut self, inputs: &[I]) -> Result<Vec<Result<O, TaskError>>> {
        let n = inputs.len();
        if n >= u32::MAX as usize {
            return Err(Error::invalid(
                format!("mapping over {n} inputs"),
                "a map takes fewer than 2^32; split the input",
            ));
        }
        let mut results: Vec<Option<Result<O, TaskError>>> = (0..n).map(|_| None).collect();
        let chunk = self.chunk_size.unwrap_or_else(|| n.div_ceil(self.size * 4).max(1));
        let mut pending: VecDeque<u32> = (0..n as u32).collect();
        let mut done = 0;
        let outcome = self.run(inputs, chunk, &mut pending, &mut results, &mut done);
        if outcome.is_err() {
            // Leave nothing half-done behind: stop every worker.
            self.shutdown(true);
        }
        outcome?;
        Ok(results.into_iter().map(|r| r.unwrap_or_else(|| Err(TaskError::BadResult("no result".into())))).collect())
    }

    fn run(
        &mut self,
        inputs: &[I],
        chunk: usize,
        pending: &mut VecDeque<u32>,
        results: &mut [Option<Result<O, TaskError>>],
        done: &mut usize,
    ) -> Result<()> {
        let n = inputs.len();
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while *done < n {
            // Keep the pool full while there is work for it.
            while self.workers.len() < self.size && self.workers.len() < n - *done {
                let worker = self.spawn_worker()?;
                self.workers.push(worker);
            }
            for w in &mut self.workers {
                while w.in_flight.len() < 2 && !pending.is_empty() {
                    let take = chunk.min(pending.len());
                    let items: Vec<u32> = pending.drain(..take).collect();
                    let batch: Vec<(u32, &I)> = items.iter().map(|&i| (i, &inputs[i as usize])).collect();
                    write_frame(&mut w.out, &batch).map_err(|e| Error::BadResult {
                        pid: w.child.pid(),
                        reason: format!("an input could not be encoded: {e}"),
                    })?;
                    w.in_flight.push_back(items);
                }
                flush_tasks(w)?;
            }
            fds.clear();
            for w in &self.workers {
                fds.push(libc::pollfd { fd: w.results.as_raw_fd(), events: libc::POLLIN, revents: 0 });
                let out = if w.out.is_empty() { 0 } else { libc::POLLOUT };
                fds.push(libc::pollfd { fd: w.tasks.as_raw_fd(), events: out, revents: 0 });
                let pidfd = w.child.pidfd().map_or(-1, |fd| fd.as_raw_fd());
                fds.push(libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 });
            }
            sys::poll(&mut fds, None).map_err(|e| Error::sys("poll", "the workers of a pool", e))?;
            let mut dead = Vec::new();
            for (k, w) in self.workers.iter_mut().enumerate() {
                let (res, pidfd) = (fds[3 * k].revents, fds[3 * k + 2].revents);
                let mut eof = false;
                if res != 0 || pidfd != 0 {
                    eof = drain_results(w, &mut buf, results, done)?;
                }
                if eof || pidfd != 0 {
                    dead.push(k);
                }
            }
            for k in dead.into_iter().rev() {
                let mut w = self.workers.swap_remove(k);
                // With SIGCHLD ignored the kernel has reaped the worker and kept no status.
                let status = match w.child.wait() {
                    Ok(status) => Some(status),
                    Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
                    Err(e) => return Err(e),
                };
                let pid = w.child.pid();
                // The slot names the item the worker was on; 0 means it died between items
                // (reading a chunk, say), and the first unanswered item is blamed so that the
                // map always progresses.
                let on = self.progress.slot(w.slot).swap(0, Ordering::Relaxed);
                let unanswered: Vec<u32> = w.in_flight.drain(..).flatten().collect();
                let culprit = unanswered.iter().copied().find(|&i| i + 1 == on).or(unanswered.first().copied());
                if let Some(culprit) = culprit {
                    results[culprit as usize] = Some(Err(match status {
                        Some(status) => TaskError::WorkerDied { pid, status },
                        None => TaskError::WorkerLost { pid },
                    }));
                    *done += 1;
                }
                // Hand the rest to the others, keeping their order.
                for &i in unanswered.iter().rev().filter(|&&i| Some(i) != culprit) {
                    pending.push_front(i);
                }
            }
        }
        Ok(())
    }

    /// The lowest progress slot no live worker uses.
    fn free_slot(&self) -> usize {
        (0..).find(|s| self.workers.iter().all(|w| w.slot != *s)).unwrap_or(0)
    }

    fn spawn_worker(&self) -> Result<Worker> {
        ensure_single_threaded()?;
        let slot = self.free_slot();
        self.progress.slot(slot).store(0, Ordering::Relaxed);
        let (task_r, task_w) = sys::pipe().map_err(|e| Error::sys("pipe2", "the task pipe of a pool worker", e))?;
        let (res_r, res_w) = sys::pipe().map_err(|e| Error::sys("pipe2", "the result pipe of a pool worker", e))?;
        let _ = io::stdout().flush();
        let parent = Pid::this();
        // SAFETY: the process is single-threaded (checked above), so the child may allocate
        // and lock freely; it runs `worker_main` and always ends with _exit.
        match unsafe { fork() }? {
            Fork::Child => {
                // Close our copies of the other workers' pipes, or they would never see the
                // end of their task pipe when the pool shuts down.
                for w in &self.workers {
                    for fd in [w.tasks.as_raw_fd(), w.results.as_raw_fd()] {
                        // SAFETY: closing an inherited descriptor number that we own a copy
                        // of in this process; the OwnedFd copies are never dropped here
                        // because this process ends in exit_child.
                        unsafe { libc::close(fd) };
                    }
                }
                drop(task_w);
                drop(res_r);
                let progress = self.progress.slot(slot);
                let code =
                    match catch_unwind(AssertUnwindSafe(|| worker_main(parent, &*self.f, progress, task_r, res_w))) {
                        Ok(Ok(())) => 0,
                        Ok(Err(_)) => 2,
                        Err(_) => 101,
                    };
                let _ = io::stdout().flush();
                exit_child(code)
            }
            Fork::Parent(child) => {
                drop(task_r);
                drop(res_w);
                sys::set_nonblocking(task_w.as_fd(), true)
                    .and_then(|()| sys::set_nonblocking(res_r.as_fd(), true))
                    .map_err(|e| Error::sys("fcntl", format!("the pipes of pool worker {}", child.pid()), e))?;
                Ok(Worker {
                    child,
                    slot,
                    tasks: task_w,
                    results: res_r,
                    out: Vec::new(),
                    inbuf: Vec::new(),
                    in_flight: VecDeque::new(),
                })
            }
        }
    }
}

/// What needs no serde: shutting the workers down, for `map`'s failures and for `Drop`.
impl<I, O> Pool<I, O> {
    /// Closes every task pipe (idle workers exit on it), then collects every worker;
    /// `kill` first sends SIGKILL, for workers that may be busy. A worker still running after
    /// 5 seconds is killed.
    fn shutdown(&mut self, kill: bool) {
        for mut w in self.workers.drain(..) {
            if kill {
                let _ = w.child.kill(Signal::KILL);
            }
            drop(w.tasks);
            if !matches!(w.child.wait_timeout(Duration::from_secs(5)), Ok(Some(_))) {
                let _ = w.child.kill(Signal::KILL);
                let _ = w.child.wait();
            }
        }
    }
}

impl<I, O> Drop for Pool<I, O> {
    fn drop(&mut self) {
        self.shutdown(false);
    }
}

/// Appends one frame (`u32` length, then postcard bytes) to `out`.
fn write_frame<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> postcard::Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match postcard::to_extend(value, std::mem::take(out)) {
        Ok(v) => {
            *out = v;
            let len = (out.len() - start - 4) as u32;
            out[start..start + 4].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Splits whole frames off the front of `buf`.
fn take_frame(buf: &[u8]) -> Option<(&[u8], usize)> {
    let (header, rest) = buf.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*header) as usize;
    rest.get(..len).map(|frame| (frame, 4 + len))
}

fn flush_tasks(w: &mut Worker) -> Result<()> {
    while !w.out.is_empty() {
        match sys::write_some(w.tasks.as_fd(), &w.out) {
            Ok(0) => break,
            Ok(n) => {
                w.out.drain(..n);
            }
            // The worker died; its pidfd or result pipe will tell us, and its items are
            // handed on then.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                w.out.clear();
                break;
            }
            Err(e) => return Err(Error::sys("write", format!("the task pipe of pool worker {}", w.child.pid()), e)),
        }
    }
    Ok(())
}

/// Reads everything the worker has sent; returns true at end of file (the worker is gone).
fn drain_results<O: DeserializeOwned>(
    w: &mut Worker,
    buf: &mut [u8],
    results: &mut [Option<Result<O, TaskError>>],
    done: &mut usize,
) -> Result<bool> {
    let pid = w.child.pid();
    let eof = loop {
        match sys::read(w.results.as_fd(), buf) {
            Ok(0) => break true,
            Ok(n) => w.inbuf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(e) => return Err(Error::sys("read", format!("the result pipe of pool worker {pid}"), e)),
        }
    };
    let mut used = 0;
    while let Some((frame, len)) = take_frame(&w.inbuf[used..]) {
        used += len;
        // A worker answers its chunks in the order it was given them.
        let Some(items) = w.in_flight.pop_front() else { continue };
        match postcard::from_bytes::<Vec<ItemOutcome<O>>>(frame) {
            Ok(outcomes) if outcomes.len() == items.len() => {
                for (index, outcome) in items.into_iter().zip(outcomes) {
                    results[index as usize] = Some(match outcome {
                        ItemOutcome::Value(v) => Ok(v),
                        ItemOutcome::Panicked(m) => Err(TaskError::Panicked(m)),
                        ItemOutcome::Unencodable(m) => {
                            Err(TaskError::BadResult(format!("the worker could not encode it: {m}")))
                        }
                    });
                    *done += 1;
                }
            }
            Ok(outcomes) => {
                let why = format!("worker {pid} answered {} items for a chunk of {}", outcomes.len(), items.len());
                for index in items {
                    results[index as usize] = Some(Err(TaskError::BadResult(why.clone())));
                    *done += 1;
                }
            }
            Err(e) => {
                for index in items {
                    results[index as usize] = Some(Err(TaskError::BadResult(e.to_string())));
                    *done += 1;
                }
            }
        }
    }
    w.inbuf.drain(..used);
    Ok(eof)
}

/// The worker's life: read a chunk of inputs, answer them in one frame, until the task pipe
/// closes.
fn worker_main<I, O>(
    parent: Pid,
    f: &dyn Fn(I) -> O,
    progress: &std::sync::atomic::AtomicU32,
    tasks: OwnedFd,
    results: OwnedFd,
) -> io::Result<()>
where
    I: DeserializeOwned,
    O: Serialize,
{
    // A worker must not outlive the pool's process.
    // SAFETY: prctl with a signal number; no memory is passed.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if Pid::parent() != parent {
        return Ok(());
    }
    let mut frame = Vec::new();
    let mut reply = Vec::new();
    loop {
        let mut header = [0u8; 4];
        if !read_exact(&tasks, &mut header)? {
            return Ok(());
        }
        frame.resize(u32::from_le_bytes(header) as usize, 0);
        if !read_exact(&tasks, &mut frame)? {
            return Ok(());
        }
        let batch: Vec<(u32, I)> =
            postcard::from_bytes(&frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // The reply frame: a postcard sequence (its length, then each outcome).
        reply.clear();
        reply.extend_from_slice(&[0; 4]);
        let mut count = [0u8; 10];
        let count = postcard::to_slice(&(batch.len() as u64), &mut count)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        reply.extend_from_slice(count);
        for (index, input) in batch {
            progress.store(index + 1, Ordering::Relaxed);
            let outcome = match catch_unwind(AssertUnwindSafe(|| f(input))) {
                Ok(value) => ItemOutcome::Value(value),
                Err(payload) => ItemOutcome::Panicked(panic_message(payload.as_ref())),
            };
            let mark = reply.len();
            if let Err(e) = postcard::serialize_with_flavor(&outcome, Append(&mut reply)) {
                reply.truncate(mark);
                let fallback: ItemOutcome<O> = ItemOutcome::Unencodable(e.to_string());
                postcard::serialize_with_flavor(&fallback, Append(&mut reply))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
        progress.store(0, Ordering::Relaxed);
        let len = (reply.len() - 4) as u32;
        reply[..4].copy_from_slice(&len.to_le_bytes());
        sys::write_all(results.as_fd(), &reply)?;
    }
}

/// A postcard output that appends to a `Vec` it borrows (postcard's own `Vec` output takes
/// ownership, and loses the buffer on an error).
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Fills `buf` from a blocking descriptor; false on a clean end of file before any byte.
fn read_exact(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match sys::read(fd.as_fd(), &mut buf[filled..])? {
            0 if filled == 0 => return Ok(false),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => filled += n,
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_partial_frames_wait() {
        let mut out = Vec::new();
        write_frame(&mut out, &(7u32, "seven")).expect("encodes");
        write_frame(&mut out, &(8u32, "eight")).expect("encodes");
        let (first, used) = take_frame(&out).expect("a whole frame");
        assert_eq!(postcard::from_bytes::<(u32, String)>(first).ok(), Some((7, "seven".to_string())));
        let (second, used2) = take_frame(&out[used..]).expect("a second frame");
        assert_eq!(postcard::from_bytes::<(u32, String)>(second).ok(), Some((8, "eight".to_string())));
        assert_eq!(used + used2, out.len());
        assert!(take_frame(&out[..used - 1]).is_none());
    }

    #[test]
    fn a_reply_built_item_by_item_decodes_as_a_sequence() {
        // The worker writes the count, then each outcome; the parent reads a Vec.
        let mut reply = postcard::to_allocvec(&2u64).expect("count");
        reply.extend(postcard::to_allocvec(&ItemOutcome::Value(5u32)).expect("one"));
        reply.extend(postcard::to_allocvec(&ItemOutcome::<u32>::Panicked("no".into())).expect("two"));
        let back: Vec<ItemOutcome<u32>> = postcard::from_bytes(&reply).expect("decodes");
        assert!(matches!(back.as_slice(), [ItemOutcome::Value(5), ItemOutcome::Panicked(m)] if m == "no"));
    }
}
