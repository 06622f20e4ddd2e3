//! CPU time and memory of a unit: from its cgroup when it has one (every process of its
//! tree counted), else from its main process in /proc.
//!
//! Why this module exists: `ctl status` and `/metrics` report them, and both are read on the
//! API thread when asked, never by the supervisor's loop. Status is polled, so each unit
//! costs as few reads as possible: `cpu.stat`, `memory.current` (not tried again once the
//! memory controller is found missing), else one read of `/proc/PID/stat`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use forkyard::Pid;

/// `memory.current` was missing: the memory controller is not enabled for our cgroups (it
/// does not come and go while `up` runs, so it is not looked for again).
static NO_MEMORY_CONTROLLER: AtomicBool = AtomicBool::new(false);

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
        if !NO_MEMORY_CONTROLLER.load(Ordering::Relaxed) {
            match std::fs::read_to_string(dir.join("memory.current")) {
                Ok(t) => memory = t.trim().parse::<u64>().ok(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    NO_MEMORY_CONTROLLER.store(true, Ordering::Relaxed);
                }
                Err(_) => {}
            }
        }
        if cpu.is_some() && memory.is_some() {
            return (cpu, memory);
        }
    }
    // Without the memory controller, the main process's resident set.
    if let Some(u) = pid.and_then(|p| forkyard::procs::usage(p).ok().flatten()) {
        cpu = cpu.or(Some(u.cpu.as_secs_f64()));
        memory = memory.or(Some(u.resident_bytes));
    }
    (cpu, memory)
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
