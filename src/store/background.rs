//! CPU priority of the store's background work.
//!
//! Nothing that answers a request waits for a checkpoint: a commit is durable once the
//! write-ahead log is synced, and the checkpoint moves the log into sled afterwards.
//! So the checkpoint thread, the start-up indexer and sled's IO threads (which write
//! what the checkpoint hands sled) run under `SCHED_IDLE` (and at nice
//! [`BACKGROUND_NICE`], which is what is left where a sandbox refuses the policy), and
//! the ingest path (HTTP workers, correlation, the log's sync) gets the CPU first when
//! both want it, as RocksDB runs compactions in a low-priority pool and flushes in a
//! high one. Under `SCHED_IDLE` a waking ingest thread always preempts them (at nice
//! 19 the scheduler may let the running one finish its slice first): on this 2-core
//! machine the correlation thread, back from the disk, then starts at once, and 1
//! alert/request ran 31.2k alerts/s instead of 28.4k (means of six alternating runs)
//! with the checkpoint taking the same CPU, from otherwise idle time (BENCHMARKS.md,
//! session 13). They are not
//! starved for good: `SCHED_IDLE` still gets a small share of a busy CPU (and the
//! whole of an idle one, which is what a thread waiting on a lock they hold leaves),
//! and once the overlay reaches its hard limit a commit checkpoints inline, at normal
//! priority (backpressure).

/// The nice value of the store's background threads (the lowest priority).
pub const BACKGROUND_NICE: i32 = 19;

/// Names (`/proc/<pid>/task/<tid>/comm`) of sled 0.34's threads: its IO thread pool
/// (`threadpool.rs`, `sled-io-N`) and its periodic flusher (`flusher.rs`).
const SLED_THREADS: [&str; 2] = ["sled-io-", "log flusher"];

/// Lowers the calling thread to `SCHED_IDLE` and [`BACKGROUND_NICE`]. Linux keeps
/// the policy and the nice value per thread (sched_setscheduler(2), setpriority(2),
/// NOTES), so both change this thread only; threads it spawns inherit them.
pub fn lower_this_thread() {
    if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
        // A sandbox that filters setpriority (systemd's `~@resources`; the shipped
        // unit allows it back): the daemon works, its checkpoints compete with ingest.
        tracing::warn!(error = %e, "cannot lower the store's background threads to nice 19");
    }
    if let Err(e) = set_idle_policy(0) {
        tracing::warn!(error = %e, "cannot put the store's background threads under SCHED_IDLE; they run at nice 19");
    }
}

/// Puts thread `tid` (0: the calling one) under `SCHED_IDLE`, which an unprivileged
/// thread may always choose for itself and its process's threads.
fn set_idle_policy(tid: i32) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler only reads `param`, a valid sched_param that lives
    // for the call.
    let rc = unsafe { libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Whether thread `tid` runs under `SCHED_IDLE`.
fn is_idle_policy(tid: i32) -> bool {
    // SAFETY: sched_getscheduler takes a thread id and touches no memory.
    unsafe { libc::sched_getscheduler(tid) == libc::SCHED_IDLE }
}

/// Lowers sled's threads to `SCHED_IDLE` and [`BACKGROUND_NICE`]. sled starts them itself (seven at
/// its first IO, more on demand, from whichever thread needs them), so they are found
/// by name; called before every checkpoint, it catches the ones started since.
/// Returns the thread ids it changed.
pub fn lower_sled_threads() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut lowered = Vec::new();
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !SLED_THREADS.iter().any(|name| comm.starts_with(name)) {
            continue;
        }
        let Some(pid) = rustix::process::Pid::from_raw(tid) else {
            continue;
        };
        if rustix::process::getpriority_process(Some(pid)).ok() == Some(BACKGROUND_NICE)
            && is_idle_policy(tid)
        {
            continue;
        }
        // The thread may have ended meanwhile (sled's extra IO threads do after a
        // second without work): nothing to lower then. A refused policy leaves it at
        // nice 19 (warned once, for the calling thread, by `lower_this_thread`).
        if rustix::process::setpriority_process(Some(pid), BACKGROUND_NICE).is_ok() {
            let _ = set_idle_policy(tid);
            lowered.push(tid);
        }
    }
    lowered
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value in `/proc/self/task/<tid>/stat` (field 19), `None` once the
    /// thread has ended.
    fn nice_of(tid: i32) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // The name (field 2) is in parentheses and may hold spaces: count after it.
        let rest = &stat[stat.rfind(')')? + 2..];
        rest.split(' ').nth(16)?.parse().ok()
    }

    #[test]
    fn the_calling_thread_alone_is_lowered() {
        let main_before = nice_of(rustix::thread::gettid().as_raw_nonzero().get());
        let tid = std::thread::spawn(|| {
            lower_this_thread();
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            assert_eq!(nice_of(tid), Some(BACKGROUND_NICE));
            assert!(is_idle_policy(tid));
            // A thread it starts inherits both.
            let child = std::thread::spawn(|| {
                let tid = rustix::thread::gettid().as_raw_nonzero().get();
                (nice_of(tid), is_idle_policy(tid))
            });
            assert_eq!(child.join().unwrap(), (Some(BACKGROUND_NICE), true));
            tid
        })
        .join()
        .unwrap();
        assert_ne!(tid, rustix::thread::gettid().as_raw_nonzero().get());
        let own = rustix::thread::gettid().as_raw_nonzero().get();
        assert_eq!(
            nice_of(own),
            main_before,
            "the test's own thread keeps its priority"
        );
        assert!(!is_idle_policy(own), "and its policy");
    }

    #[test]
    fn sled_threads_are_found_by_name_and_lowered() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        // sled's threads are shared by every database in the process (other tests'
        // too), so they may have been lowered already: lower the rest, then check all.
        lower_sled_threads();
        let mut seen = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let tid: i32 = task.file_name().to_str().unwrap().parse().unwrap();
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with("sled-io-") {
                seen += 1;
                // A thread sled started just now from an unlowered thread is caught by
                // the next call; one started before the call must be lowered.
                if let Some(nice) = nice_of(tid) {
                    if nice != BACKGROUND_NICE || !is_idle_policy(tid) {
                        assert!(lower_sled_threads().contains(&tid), "{comm}: nice {nice}");
                    }
                    assert!(is_idle_policy(tid) || nice_of(tid).is_none(), "{comm}");
                }
            }
        }
        assert!(seen > 0, "sled started no IO thread");
    }
}
