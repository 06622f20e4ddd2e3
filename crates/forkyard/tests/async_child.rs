//! The async twins under a tokio runtime, against real processes: children awaited on their
//! pidfds (many at once, one killed while awaited), and closures run in children as futures.
//! Each test builds a current-thread runtime, so the process stays single-threaded and may
//! fork.

mod support;

use std::time::Duration;

use forkyard::async_child::{AsyncChild, run_in_child};
use forkyard::spawn::Program;
use forkyard::{Error, ExitStatus, Launch, Signal};

fn main() {
    support::run(&[
        ("many_children_are_awaited_at_once", many_children_are_awaited_at_once),
        ("a_child_killed_while_awaited_ends_the_wait", a_child_killed_while_awaited_ends_the_wait),
        ("closures_run_in_children_as_futures", closures_run_in_children_as_futures),
        ("a_large_result_streams_through_the_reactor", a_large_result_streams_through_the_reactor),
        ("a_panic_comes_back_from_the_async_closure", a_panic_comes_back_from_the_async_closure),
    ])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a current-thread runtime")
}

/// Many children, each exiting with its own code after its own delay, awaited together on
/// one thread: every status comes back, matched to its child.
fn many_children_are_awaited_at_once() {
    runtime().block_on(async {
        let mut children = Vec::new();
        for i in 0..40u8 {
            let script = format!("sleep 0.{}; exit {i}", 40 - i);
            let child = Launch::new().start(Program::new(["sh", "-c", &script])).expect("start sh");
            children.push(AsyncChild::new(child).expect("a pidfd"));
        }
        let waits = children.iter_mut().map(|c| c.wait());
        let statuses = tokio::time::timeout(support::PATIENCE, futures_join_all(waits)).await.expect("all ended");
        for (i, status) in statuses.into_iter().enumerate() {
            assert_eq!(status.expect("wait"), ExitStatus::Exited(i as u8));
        }
    });
}

/// A wait already in progress ends when another task kills the child through its pidfd;
/// other tasks run meanwhile (the wait does not block the thread).
fn a_child_killed_while_awaited_ends_the_wait() {
    runtime().block_on(async {
        let child = Launch::new().start(Program::new(["sleep", "600"])).expect("start sleep");
        let mut child = AsyncChild::new(child).expect("a pidfd");
        let pid = child.pid();
        let waiting = async {
            let status = child.wait().await;
            (status, support::state(pid))
        };
        let killer = async {
            // Let the wait start and park on the reactor first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            forkyard::Signal::KILL.send(pid).expect("kill");
        };
        let ((status, state), ()) =
            tokio::time::timeout(support::PATIENCE, async { tokio::join!(waiting, killer) }).await.expect("ended");
        assert_eq!(status.expect("wait"), ExitStatus::Signaled { signal: Signal::KILL, core_dumped: false });
        assert_eq!(state, None, "the child was collected by the wait");
    });
}

fn closures_run_in_children_as_futures() {
    runtime().block_on(async {
        let me = forkyard::Pid::this();
        let mut var = 10;
        let (a, b) = tokio::join!(
            run_in_child(|| forkyard::Pid::this().as_raw()),
            run_in_child(|| {
                var = 9;
                var * 2
            })
        );
        assert_ne!(a.expect("first"), me.as_raw(), "ran in another process");
        assert_eq!((b.expect("second"), var), (18, 10));
    });
}

fn a_large_result_streams_through_the_reactor() {
    runtime().block_on(async {
        let big = run_in_child(|| vec![7u8; 4 << 20]).await.expect("a large result");
        assert_eq!(big.len(), 4 << 20);
        assert!(big.iter().all(|&b| b == 7));
    });
}

fn a_panic_comes_back_from_the_async_closure() {
    runtime().block_on(async {
        match run_in_child(|| -> u32 { panic!("async boom") }).await {
            Err(Error::ChildPanicked { message, .. }) => assert_eq!(message, "async boom"),
            other => panic!("expected ChildPanicked, got {other:?}"),
        }
    });
}

/// Awaits every future at once (a tiny `join_all`, to need no other crate).
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, fut) in out.iter_mut().zip(pending.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}
