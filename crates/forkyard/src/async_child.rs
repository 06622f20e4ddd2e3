//! Async twins for tokio: a [`Child`] awaited on its pidfd, and [`run_in_child`] as a future.
//!
//! Why this module exists: `tokio::process` still learns of exits through a SIGCHLD handler
//! and an orphan queue. A pidfd needs neither: it becomes readable when its process ends, so
//! tokio's reactor can wait on it like a socket, and a signal sent through it can never reach
//! a recycled PID. Nothing here starts a thread or installs a signal handler; it runs on any
//! tokio runtime with I/O enabled. (Behind the `tokio` feature.)
//!
//! [`run_in_child`]: crate::run_in_child

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::child::Child;
use crate::error::{Error, Result};
use crate::fork::{Fork, child_side, decide, ensure_single_threaded, fork};
use crate::pid::Pid;
use crate::signal::Signal;
use crate::status::ExitStatus;
use crate::sys;

/// A child process awaited through tokio's reactor on its pidfd.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap().block_on(async {
/// use forkyard::{ExitStatus, Launch, Signal};
/// use forkyard::async_child::AsyncChild;
/// use forkyard::spawn::Program;
///
/// let mut child = AsyncChild::new(Launch::new().start(Program::new(["sleep", "60"]))?)?;
/// child.kill(Signal::TERM)?; // through the pidfd: never a recycled PID
/// let status = child.wait().await?;
/// assert_eq!(status, ExitStatus::Signaled { signal: Signal::TERM, core_dumped: false });
/// # Ok::<(), forkyard::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct AsyncChild {
    child: Child,
    /// A second descriptor for the child's pidfd, registered with the reactor (the `Child`
    /// closes its own once it has collected the child).
    ready: AsyncFd<OwnedFd>,
}

impl AsyncChild {
    /// Takes charge of `child`. Must be called within a tokio runtime with I/O enabled.
    /// Fails with [`Error::Unsupported`] if the child has no pidfd (Linux before 5.3, or a
    /// descriptor table that was full when it started).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap().block_on(async {
    /// use forkyard::{ExitStatus, Launch};
    /// use forkyard::async_child::AsyncChild;
    /// use forkyard::spawn::Program;
    ///
    /// let child = Launch::new().start(Program::new(["true"]))?;
    /// let mut child = AsyncChild::new(child)?; // inside a runtime with I/O enabled
    /// assert_eq!(child.wait().await?, ExitStatus::Exited(0));
    /// # Ok::<(), forkyard::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn new(child: Child) -> Result<AsyncChild> {
        let pid = child.pid();
        let Some(pidfd) = child.pidfd() else {
            return Err(Error::Unsupported {
                what: "awaiting a child without a pidfd",
                why: format!("child {pid} has none (Linux 5.3 or later needed); use Child::wait on a blocking thread"),
            });
        };
        let copy =
            pidfd.try_clone_to_owned().map_err(|e| Error::sys("fcntl", format!("the pidfd of child {pid}"), e))?;
        let ready = register(copy).map_err(|e| Error::sys("epoll_ctl", format!("the pidfd of child {pid}"), e))?;
        Ok(AsyncChild { child, ready })
    }

    /// The child's PID.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap().block_on(async {
    /// use forkyard::Launch;
    /// use forkyard::async_child::AsyncChild;
    /// use forkyard::spawn::Program;
    ///
    /// let child = Launch::new().start(Program::new(["true"]))?;
    /// let pid = child.pid();
    /// let mut child = AsyncChild::new(child)?;
    /// assert_eq!(child.pid(), pid);
    /// child.wait().await?;
    /// # Ok::<(), forkyard::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn pid(&self) -> Pid {
        self.child.pid()
    }

    /// Waits for the child to end without blocking the runtime, collects it and returns how
    /// it ended. Cancelling the future leaves the child running and still waitable.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build().unwrap().block_on(async {
    /// use std::time::Duration;
    /// use forkyard::{Launch, Signal};
    /// use forkyard::async_child::AsyncChild;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = AsyncChild::new(Launch::new().start(Program::new(["sleep", "60"]))?)?;
    /// // Give up waiting after a moment: the child runs on, still waitable.
    /// assert!(tokio::time::timeout(Duration::from_millis(10), child.wait()).await.is_err());
    /// child.kill(Signal::KILL)?;
    /// assert_eq!(child.wait().await?.signal(), Some(Signal::KILL));
    /// # Ok::<(), forkyard::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            let mut guard = self
                .ready
                .readable()
                .await
                .map_err(|e| Error::sys("epoll_wait", format!("the pidfd of child {}", self.pid()), e))?;
            match self.child.try_wait()? {
                Some(status) => return Ok(status),
                None => guard.clear_ready(),
            }
        }
    }

    /// Sends `signal` through the pidfd (see [`Child::kill`]).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap().block_on(async {
    /// use forkyard::{Launch, Signal};
    /// use forkyard::async_child::AsyncChild;
    /// use forkyard::spawn::Program;
    ///
    /// let mut child = AsyncChild::new(Launch::new().start(Program::new(["sleep", "60"]))?)?;
    /// child.kill(Signal::INT)?;
    /// assert_eq!(child.wait().await?.signal(), Some(Signal::INT));
    /// # Ok::<(), forkyard::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn kill(&self, signal: Signal) -> Result<()> {
        self.child.kill(signal)
    }

    /// The blocking handle back.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap().block_on(async {
    /// use forkyard::{ExitStatus, Launch};
    /// use forkyard::async_child::AsyncChild;
    /// use forkyard::spawn::Program;
    ///
    /// let child = AsyncChild::new(Launch::new().start(Program::new(["sh", "-c", "exit 6"]))?)?;
    /// let mut blocking = child.into_inner(); // back to Child::wait, on a thread that may block
    /// assert_eq!(blocking.wait()?, ExitStatus::Exited(6));
    /// # Ok::<(), forkyard::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn into_inner(self) -> Child {
        self.child
    }
}

/// [`crate::run_in_child`] as a future: runs `f` in a forked child and awaits its result on
/// tokio's reactor (the result pipe and the child's pidfd), so other tasks run meanwhile.
///
/// Errors, SIGCHLD being ignored, and the collected child are as for
/// [`crate::run_in_child`]. The process must be single-threaded when it forks, so this
/// runs on a current-thread runtime ([`Error::MultiThreaded`] otherwise).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap().block_on(async {
/// let (a, b) = tokio::join!(
///     forkyard::async_child::run_in_child(|| 6 * 7),
///     forkyard::async_child::run_in_child(|| String::from("from another child")),
/// );
/// assert_eq!(a?, 42);
/// assert_eq!(b?, "from another child");
/// # Ok::<(), forkyard::Error>(())
/// # }).unwrap();
/// ```
pub async fn run_in_child<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> T,
    T: Serialize + DeserializeOwned,
{
    ensure_single_threaded()?;
    let (read_end, write_end) =
        sys::pipe_with(libc::O_NONBLOCK).map_err(|e| Error::sys("pipe2", "the result pipe of a closure child", e))?;
    let big = sys::eventfd().map_err(|e| Error::sys("eventfd", "a closure child", e))?;
    let _ = std::io::Write::flush(&mut std::io::stdout());
    let parent = Pid::this();
    // SAFETY: the process is single-threaded (checked above), so the child may allocate; it
    // runs the closure, writes to the pipe and ends with _exit.
    let child = match unsafe { fork() }? {
        Fork::Child => child_side(parent, f, read_end, write_end, big),
        Fork::Parent(child) => child,
    };
    drop(write_end);
    drop(big);
    let pid = child.pid();
    let mut child = match AsyncChild::new(child) {
        Ok(child) => child,
        Err(e) => return Err(e),
    };
    let pipe = register(read_end).map_err(|e| Error::sys("epoll_ctl", format!("the result pipe of child {pid}"), e))?;
    let mut data = Vec::new();
    let received = receive(&pipe, &child, &mut data).await;
    if let Err(e) = received {
        let _ = child.kill(Signal::KILL);
        let _ = child.wait().await;
        return Err(Error::sys("read", format!("the result pipe of child {pid}"), e));
    }
    let status = match child.wait().await {
        Ok(status) => Some(status),
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => None,
        Err(e) => return Err(e),
    };
    decide(pid, &mut data, status)
}

/// Registers a descriptor with tokio's reactor, for reading.
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is open, the AsyncFd owns it from here on (so it stays open and the
    // same file), and its as_raw_fd always returns that descriptor.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|e| e.into_parts().1)
}

/// Reads the pipe until end of file, or until the child has ended and the pipe is drained (a
/// grandchild holding the write end cannot make it hang).
async fn receive(pipe: &AsyncFd<OwnedFd>, child: &AsyncChild, data: &mut Vec<u8>) -> io::Result<()> {
    loop {
        if drain(pipe, data)? {
            return Ok(());
        }
        tokio::select! {
            ready = pipe.readable() => ready?.clear_ready(),
            ready = child.ready.readable() => {
                // Left ready: the wait that follows finds the child ended.
                ready?.retain_ready();
                // The child has ended: whatever it wrote is in the pipe now.
                drain(pipe, data)?;
                return Ok(());
            }
        }
    }
}

/// Reads what the pipe holds now; true at end of file.
fn drain(pipe: &AsyncFd<OwnedFd>, data: &mut Vec<u8>) -> io::Result<bool> {
    loop {
        if data.len() == data.capacity() {
            data.reserve(64 * 1024);
        }
        match sys::read_spare(pipe.get_ref().as_fd(), data) {
            Ok(0) => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}
