//! CPU time and memory of a unit: from its cgroup when it has one (every process of its
//! tree counted), else from its main process in /proc.
//!
//! Why this module exists: `ctl status` and `/metrics` report them, and both are read on the
//! API thread when asked, never by the supervisor's loop.

use std::path::Path;

use forkyard::Pid;

/// `(cpu seconds, memory bytes)` of a unit, as far as they can be read.
pub fn of(cgroup: Option<&Path>, pid: Option<Pid>) -> (Option<f64>, Option<u64>) {
    let (mut cpu, mut memory) = (None, None);
    if let Some(dir) = cgroup {
        cpu = std::fs::read_to_string(dir.join("cpu.stat")).ok().and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|us| us as f64 / 1e6)
        });
        // Without the memory controller delegated, the main process's resident set is used.
        memory = std::fs::read_to_string(dir.join("memory.current")).ok().and_then(|t| t.trim().parse::<u64>().ok());
        if cpu.is_some() && memory.is_some() {
            return (cpu, memory);
        }
    }
    if let Some(p) = pid.and_then(|p| forkyard::procs::Process::read(p).ok().flatten()) {
        cpu = cpu.or(Some(p.cpu_time().as_secs_f64()));
        memory = memory.or(Some(p.rss_pages.saturating_mul(page_size())));
    }
    (cpu, memory)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions; it only reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_has_cpu_time_and_memory() {
        let (cpu, memory) = of(None, Some(Pid::this()));
        assert!(cpu.is_some_and(|c| c >= 0.0));
        assert!(memory.is_some_and(|m| m > 0), "{memory:?}");
        let (cpu, memory) = of(Some(Path::new("/nonexistent-cgroup")), None);
        assert_eq!((cpu, memory), (None, None));
    }
}
