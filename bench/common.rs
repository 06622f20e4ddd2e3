//! What every side-by-side benchmark needs: medians and a description of the machine.
//!
//! Included by the bench binaries of both crates (`#[path] mod common;`), so that each
//! prints its tables the same way.
#![allow(dead_code)]

use std::process::Command;

/// The median (the mean of the middle two for an even count); NaN for no values.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// Today's date (UTC), as `date -u +%Y-%m-%d` prints it.
pub fn date() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The CPU's model name from /proc/cpuinfo.
pub fn host_cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
        })
        .unwrap_or_else(|| "an unknown CPU".into())
}

/// How many CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The kernel's release string.
pub fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string()
}

/// The floor of every fork-based call: `fork`, an `_exit(0)` in the child, `waitpid`.
/// The caller must be single-threaded (the child only calls `_exit`).
pub fn bare_fork() {
    // SAFETY: the benches that call this are single-threaded; the child only calls _exit,
    // and the parent collects its own child.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}

/// Makes one orphan that ends at once: a child that forks and exits, so the grandchild's
/// zombie goes to PID 1 (or the nearest subreaper). The caller must be single-threaded.
pub fn make_orphan() {
    // SAFETY: the benches that call this are single-threaded; the middle child forks once
    // and both it and the grandchild only _exit; the parent collects the middle child.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::fork();
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
    }
}
