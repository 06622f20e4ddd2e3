//! Every claim of the seed tutorial, checked by running its example program and reading
//! what it prints. (The claims are also checked through the API in the other test files;
//! these make sure the examples a reader runs say what they should.)

mod support;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use forkyard::Pid;

fn main() {
    support::run(&[
        ("fork_runs_the_task_in_the_child", fork_runs_the_task_in_the_child),
        ("child_memory_is_independent", child_memory_is_independent),
        ("a_finished_child_is_a_zombie_until_collected", a_finished_child_is_a_zombie_until_collected),
        ("an_orphan_is_adopted_and_collected", an_orphan_is_adopted_and_collected),
        ("sigchld_cuts_the_parents_sleep_short", sigchld_cuts_the_parents_sleep_short),
        ("polling_collects_at_the_tick", polling_collects_at_the_tick),
        ("pidfd_collects_without_signals", pidfd_collects_without_signals),
        ("pool_reports_failures_per_item", pool_reports_failures_per_item),
    ])
}

/// Runs an example built alongside this test (cargo builds examples for `cargo test` and
/// nextest alike) and returns its standard output as lines.
fn run_example(name: &str) -> Vec<String> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir: PathBuf = exe.parent().and_then(|d| d.parent()).expect("target/<profile>").join("examples");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build the examples (cargo test builds them)", path.display());
    let out = Command::new(&path).env("FORKYARD_SEED_SCALE", "0.002").output().expect("running the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{name} failed ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout.lines().map(str::to_owned).collect()
}

/// Runs an example at `scale`, failing if it has not ended within `limit` (it is killed
/// then); returns its standard output as lines.
fn run_example_within(name: &str, scale: &str, limit: Duration) -> Vec<String> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir: PathBuf = exe.parent().and_then(|d| d.parent()).expect("target/<profile>").join("examples");
    // Collected through the forkyard::Child below, which can wait with a time limit.
    #[allow(clippy::zombie_processes)]
    let mut example = Command::new(dir.join(name))
        .env("FORKYARD_SEED_SCALE", scale)
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the example");
    let pid = Pid::new(example.id() as i32).expect("a pid");
    let mut child = forkyard::Child::from_pid(pid).expect("the example is our child");
    let status = child.wait_timeout(limit).expect("waiting for the example");
    if status.is_none() {
        child.kill(forkyard::Signal::KILL).expect("kill the example");
        child.wait().expect("reap the example");
    }
    let mut stdout = String::new();
    example.stdout.take().expect("piped").read_to_string(&mut stdout).expect("reading its output");
    let status = status.unwrap_or_else(|| panic!("{name} had not ended after {limit:?}; it printed:\n{stdout}"));
    assert!(status.success(), "{name} failed ({status}): {stdout}");
    stdout.lines().map(str::to_owned).collect()
}

fn position(lines: &[String], text: &str) -> usize {
    lines.iter().position(|l| l.contains(text)).unwrap_or_else(|| panic!("no line with {text:?} in {lines:#?}"))
}

/// The number at the end of the first line containing `text`.
fn number_after(lines: &[String], text: &str) -> i32 {
    let line = &lines[position(lines, text)];
    let tail = &line[line.find(text).expect("found") + text.len()..];
    let digits: String = tail.trim_start().chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {text:?} in {line:?}"))
}

fn fork_runs_the_task_in_the_child() {
    let lines = run_example("seed_fork");
    assert_eq!(lines.len(), 3, "{lines:?}");
    // Both branches ran; the order of the parent's and the child's lines is not fixed, but
    // the child prints before it works.
    let (parent, child, work) =
        (position(&lines, "I am father child"), position(&lines, "I am a child"), position(&lines, "work 1"));
    assert!(child < work);
    assert_ne!(parent, child);
}

fn child_memory_is_independent() {
    let lines = run_example("seed_memory");
    assert_eq!(lines.last().map(String::as_str), Some("10"), "the parent still sees var = 10: {lines:?}");
    assert!(position(&lines, "work 1") < lines.len() - 1);
}

fn a_finished_child_is_a_zombie_until_collected() {
    let lines = run_example("seed_zombie");
    let pid = number_after(&lines, "I am a child");
    let zombie_lines: Vec<&String> =
        lines.iter().filter(|l| l.contains(&format!("{pid} Z+")) && l.ends_with("<defunct>")).collect();
    assert_eq!(zombie_lines.len(), 2, "a zombie before and after the pause: {lines:?}");
    let done = position(&lines, "done");
    assert_eq!(lines[done + 1].trim(), format!("{pid} is gone"), "collected means gone");
}

fn an_orphan_is_adopted_and_collected() {
    let lines = run_example("seed_orphan");
    let adopter = number_after(&lines, "I am the adopter");
    let parent = number_after(&lines, "I am the parent");
    let child = number_after(&lines, "I am a child");
    assert_eq!(number_after(&lines, "my parent is"), parent);
    assert_eq!(number_after(&lines, "I was adopted by"), adopter, "the orphan's new parent is the subreaper");
    assert_eq!(number_after(&lines, "Reaped my child"), parent);
    assert_eq!(number_after(&lines, "Reaped an orphan"), child);
}

fn sigchld_cuts_the_parents_sleep_short() {
    // At this scale the child sleeps 0.5 s and the parent's "1000 s" is 100 s: an example
    // that reaped only when its sleep ran out would not finish within the 30 s allowed here.
    let lines = run_example_within("seed_sigchld", "0.1", Duration::from_secs(30));
    let child = number_after(&lines, "the child will be PID");
    assert_eq!(number_after(&lines, "Reaped child process"), child);
    // The reap is reported before "sleep done": the sleep ended because the child was
    // collected, not because its time ran out.
    assert!(position(&lines, "Reaped child process") < position(&lines, "sleep done"));
    assert_eq!(lines.last().map(String::as_str), Some("sleep done"));
}

fn polling_collects_at_the_tick() {
    let lines = run_example("seed_poll");
    let child = number_after(&lines, "The child will be PID");
    assert!(position(&lines, "Child terminating") < position(&lines, "is a zombie until the next sweep"));
    assert!(position(&lines, "is a zombie until the next sweep") < position(&lines, "Parent sleep done"));
    assert_eq!(number_after(&lines, "Reaped child process"), child);
}

fn pidfd_collects_without_signals() {
    let lines = run_example("seed_pidfd");
    let child = number_after(&lines, "The child will be PID");
    assert_eq!(number_after(&lines, "Reaped child process"), child);
    assert!(lines.iter().any(|l| l.contains("exited with status 3")), "{lines:?}");
}

fn pool_reports_failures_per_item() {
    let lines = run_example("pool_map");
    assert_eq!(lines[0].split_whitespace().take(3).collect::<Vec<_>>(), ["9998", "of", "10000"]);
    assert!(lines.iter().any(|l| l == "item 13: the function panicked on this item: 13 is unlucky"), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("item 77: worker") && l.ends_with("killed by SIGABRT while working on this item"))
    );
    // Σ x² for x in 0..10000, minus 13² and 77².
    let expected: u64 = (0..10_000u64).map(|x| x * x).sum::<u64>() - 169 - 5929;
    assert_eq!(lines.last().cloned(), Some(format!("sum of squares: {expected}")));
}
