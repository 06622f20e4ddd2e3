//! Nothing allocates between `fork` and `exec`: the rule at the top of `src/spawn/child.rs`,
//! checked by running real programs through `Launch::start` and `Launch::spawn` with every
//! option that makes the child run code before `exec`.
//!
//! How: this test binary's global allocator wraps the system one and, when it is called in
//! any process but the test's own (a fork of it not yet replaced by `exec`), writes a marker
//! to standard error and ends that process with [`ALLOCATED`]. A child that allocates
//! therefore never runs its program: the test sees the exit code and the marker instead of
//! the program's output. The C library's own `malloc` (inside `setenv` or `execvp`) does not
//! go through Rust's allocator and is not seen here.
//!
//! `run_in_child` and `Pool` are not covered: their children run the caller's closure and
//! serialize its result, which allocates by design (they refuse a multi-threaded process
//! instead).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Read;
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use forkyard::spawn::{Group, Program};
use forkyard::{Disposition, ExitStatus, Launch, Pid, Signal, SignalSet};

/// The exit code of a forked child that allocated before `exec`.
const ALLOCATED: i32 = 86;
const MARKER: &[u8] = b"\nno_alloc: a forked child allocated before exec\n";

/// The test process's PID, set first thing in `main` (0 until then: no check).
static TEST_PID: AtomicI32 = AtomicI32::new(0);

struct ForkedChildMustNotAllocate;

impl ForkedChildMustNotAllocate {
    fn check() {
        let test = TEST_PID.load(Ordering::Relaxed);
        // SAFETY: getpid is a system call with no preconditions (glibc no longer caches it, so
        // a fork sees its own PID).
        if test != 0 && unsafe { libc::getpid() } != test {
            // SAFETY: a write of a static buffer to standard error, then _exit: both
            // async-signal-safe, neither allocates.
            unsafe {
                libc::write(libc::STDERR_FILENO, MARKER.as_ptr().cast(), MARKER.len());
                libc::_exit(ALLOCATED);
            }
        }
    }
}

// SAFETY: every call is passed to `System` unchanged; `check` either returns or ends the
// process without touching the allocation.
unsafe impl GlobalAlloc for ForkedChildMustNotAllocate {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check();
        // SAFETY: the caller's contract for `alloc` is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check();
        // SAFETY: as for `alloc`; `ptr` came from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::check();
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: ForkedChildMustNotAllocate = ForkedChildMustNotAllocate;

fn main() {
    TEST_PID.store(Pid::this().as_raw(), Ordering::Relaxed);
    support::run(&[
        ("the_check_catches_an_allocation_in_a_fork", the_check_catches_an_allocation_in_a_fork),
        ("start_allocates_nothing_in_the_child", start_allocates_nothing_in_the_child),
        ("spawn_allocates_nothing_in_the_child", spawn_allocates_nothing_in_the_child),
    ]);
}

fn read_all(mut from: impl Read) -> String {
    let mut text = String::new();
    from.read_to_string(&mut text).expect("read the child's output");
    text
}

/// The check itself works: a fork that allocates ends with the code and the marker.
fn the_check_catches_an_allocation_in_a_fork() {
    let (err_r, err_w) = support::pipe();
    // SAFETY: the test process is single-threaded; the child only redirects its standard
    // error and allocates, which the allocator turns into _exit.
    match unsafe { forkyard::fork() }.expect("fork") {
        forkyard::Fork::Child => {
            // SAFETY: dup2 of a descriptor we hold onto standard error.
            unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&err_w), libc::STDERR_FILENO) };
            let v: Vec<u8> = Vec::with_capacity(1);
            drop(std::hint::black_box(v));
            forkyard::exit_child(0)
        }
        forkyard::Fork::Parent(mut child) => {
            drop(err_w);
            let said = read_all(err_r);
            assert_eq!(child.wait().expect("wait"), ExitStatus::Exited(ALLOCATED as u8));
            assert!(said.contains("allocated before exec"), "{said:?}");
        }
    }
}

/// A cgroup of our own under the test's cgroup, removed on drop; `None` where cgroup2 is
/// not writable.
struct TempCgroup {
    dir: std::path::PathBuf,
    handle: std::fs::File,
}

impl TempCgroup {
    fn new(what: &str) -> Option<TempCgroup> {
        let name = format!("forkyard-noalloc-{what}-{}", std::process::id());
        let dir = forkyard::procs::own_cgroup()?.join(name);
        std::fs::create_dir(&dir).ok()?;
        let handle = std::fs::File::open(&dir).expect("open the cgroup directory");
        Some(TempCgroup { dir, handle })
    }
}

impl Drop for TempCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// The setups to try, each naming what it adds: every option that runs code in the child.
fn setups<'fd>(cgroup: Option<&'fd TempCgroup>) -> Vec<(&'static str, Launch<'fd>)> {
    let mut mask = SignalSet::empty();
    mask.insert(Signal::USR2);
    let mut list = vec![
        ("nothing", Launch::new()),
        ("own group in the foreground", Launch::new().group(Group::Own).foreground(true)),
        ("session with a terminal", Launch::new().group(Group::Session).foreground(true)),
        ("parent death signal", Launch::new().parent_death_signal(Signal::KILL)),
        ("dispositions", Launch::new().dispositions(vec![(Signal::USR1, Disposition::Ignore)])),
        ("signal mask", Launch::new().signal_mask(mask)),
        ("announce", Launch::new().announce(b"ready\n".to_vec())),
        ("listen pid", Launch::new().pass_listen_pid(true)),
    ];
    if is_root() {
        let nobody = forkyard::users::credentials(Some("nobody"), None).expect("nobody exists");
        list.push(("credentials", Launch::new().credentials(nobody)));
    } else {
        eprintln!("not root: the credentials switch is not tried");
    }
    match cgroup {
        Some(cg) => list.push(("cgroup", Launch::new().cgroup(cg.handle.as_fd()))),
        None => eprintln!("no writable cgroup2 here: the cgroup join is not tried"),
    }
    // Everything at once (a group, not a session: foreground means something else for each).
    let mut all = Launch::new()
        .group(Group::Own)
        .foreground(true)
        .parent_death_signal(Signal::KILL)
        .dispositions(vec![(Signal::USR1, Disposition::Ignore)])
        .signal_mask(mask)
        .announce(b"ready\n".to_vec())
        .pass_listen_pid(true);
    if is_root() {
        all = all.credentials(forkyard::users::credentials(Some("nobody"), None).expect("nobody exists"));
    }
    if let Some(cg) = cgroup {
        all = all.cgroup(cg.handle.as_fd());
    }
    list.push(("all of them", all));
    list
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// What the program prints: a fixed word, its PID and `LISTEN_PID` (the child writes its own
/// PID there when asked to pass it on) and its directory.
const SCRIPT: &str = "echo ran $$ ${LISTEN_PID:-none} $(pwd)";

/// Checks one run's outcome: the program ran (its words are there), from `/`, with
/// `LISTEN_PID` renamed to it when asked, and the child never hit the allocator's check.
fn check_ran(what: &str, launch: &Launch<'_>, status: ExitStatus, out: &str, err: &str) {
    assert!(!err.contains("allocated before exec"), "{what}: the child allocated before exec: {err:?}");
    assert_ne!(
        status,
        ExitStatus::Exited(ALLOCATED as u8),
        "{what}: the child allocated before exec (before its standard error was redirected, so the marker is above)"
    );
    assert_eq!(status, ExitStatus::Exited(0), "{what}: the program did not run to the end; stderr {err:?}");
    let words: Vec<&str> = out.split_whitespace().collect();
    let [ran, pid, listen_pid, cwd] = words[..] else { panic!("{what}: unexpected output {out:?}") };
    assert_eq!((ran, cwd), ("ran", "/"), "{what}: {out:?}");
    if launch.pass_listen_pid {
        assert_eq!(listen_pid, pid, "{what}: LISTEN_PID was not renamed to the child");
    }
    if launch.announce.is_some() {
        assert!(err.starts_with("ready\n"), "{what}: the announcement is missing: {err:?}");
    }
}

/// `LISTEN_PID` naming this process, so that `pass_listen_pid` has something to rename.
fn name_us_in_listen_pid() {
    // SAFETY: the test process is single-threaded here (the harness runs it on the main
    // thread and nothing else started one).
    unsafe { std::env::set_var("LISTEN_PID", Pid::this().to_string()) };
}

fn start_allocates_nothing_in_the_child() {
    name_us_in_listen_pid();
    let cgroup = TempCgroup::new("start");
    for (what, launch) in setups(cgroup.as_ref()) {
        let (out_r, out_w) = support::pipe();
        let (err_r, err_w) = support::pipe();
        let mut program = Program::new(["sh", "-c", SCRIPT]);
        program.stdio = [Some(std::fs::File::open("/dev/null").expect("/dev/null").into()), Some(out_w), Some(err_w)];
        program.cwd = Some("/".into());
        let mut child = launch.start(program).unwrap_or_else(|e| panic!("{what}: start: {e}"));
        let (out, err) = (read_all(out_r), read_all(err_r));
        let status = child.wait().expect("wait");
        check_ran(what, &launch, status, &out, &err);
    }
}

fn spawn_allocates_nothing_in_the_child() {
    name_us_in_listen_pid();
    let cgroup = TempCgroup::new("spawn");
    for (what, launch) in setups(cgroup.as_ref()) {
        let mut command = Command::new("sh");
        command.args(["-c", SCRIPT]).current_dir("/");
        command.stdin(Stdio::null());
        let (out_r, out_w) = support::pipe();
        let (err_r, err_w) = support::pipe();
        command.stdout(Stdio::from(out_w)).stderr(Stdio::from(err_w));
        let mut child = launch.spawn(&mut command).unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
        // The command holds the write ends until it is dropped.
        drop(command);
        let (out, err) = (read_all(out_r), read_all(err_r));
        let status = child.wait().expect("wait");
        check_ran(what, &launch, status, &out, &err);
    }
}
