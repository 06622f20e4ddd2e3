//! catatonit's pause mode: no command; collect orphans; exit 0 on SIGTERM or SIGINT and
//! ignore every other signal.
//!
//! Why this module exists: a pod's "infra" container (podman's, Kubernetes' pause) holds the
//! namespaces open and must do nothing else, for as long as the pod lives, and reap whatever
//! is re-parented to it. It shares init's setup (reaper, signals) but has no command, no
//! forwarding and no ending but a signal.

use forkyard::Signal;
use forkyard::signal::SignalInfo;

use crate::event::{Event, Report};
use crate::run::{Failure, reap_one};
use crate::setup::{become_reaper, take_signals};
use crate::{Init, Subreaper};

/// Runs pause mode until SIGTERM or SIGINT; returns 0 then. Uses `init`'s subreaper and
/// signal settings; its command is not run.
pub fn pause(init: &Init, report: &mut dyn Report) -> Result<i32, Failure> {
    // Pause mode insists on being the reaper of what is below it, whatever `init` says.
    let subreaper = if init.subreaper == Subreaper::No { Subreaper::No } else { Subreaper::Require };
    let reaping = become_reaper(subreaper, report)?;
    report.event(&Event::Reaping(reaping));
    let signals = take_signals(init)?;
    let mut batch = [SignalInfo::default(); 16];
    loop {
        let n = signals.read_batch(&mut batch)?;
        for info in &batch[..n] {
            report.event(&Event::Received { signal: info.signal });
            if info.signal == Signal::TERM || info.signal == Signal::INT {
                report.event(&Event::Exiting { code: 0 });
                return Ok(0);
            }
            if info.signal == Signal::CHLD {
                while let Some((pid, status)) = reap_one()? {
                    report.event(&Event::Reaped { pid, status, main: false });
                }
            } else {
                report.event(&Event::Ignored { signal: info.signal });
            }
        }
    }
}
