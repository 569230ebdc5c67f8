//! CPU priority of the store's background work.
//!
//! Nothing that answers a request waits for a checkpoint: a commit is durable once the
//! write-ahead log is synced, and the checkpoint moves the log into sled afterwards.
//! So the checkpoint thread, the start-up indexer and sled's IO threads (which write
//! what the checkpoint hands sled) run at nice [`BACKGROUND_NICE`], and the ingest
//! path (HTTP workers, correlation, the log's sync) gets the CPU first when both want
//! it, as RocksDB runs compactions in a low-priority pool and flushes in a high one.
//! They are never starved for long: nice 19 is still a share of the CPU (unlike
//! `SCHED_IDLE`, which a busy ingest path would starve while it holds sled's locks),
//! and once the overlay reaches its hard limit a commit checkpoints inline, at normal
//! priority (backpressure). Measured in BENCHMARKS.md (session 7).

/// The nice value of the store's background threads (the lowest priority).
pub const BACKGROUND_NICE: i32 = 19;

/// Names (`/proc/<pid>/task/<tid>/comm`) of sled 0.34's threads: its IO thread pool
/// (`threadpool.rs`, `sled-io-N`) and its periodic flusher (`flusher.rs`).
const SLED_THREADS: [&str; 2] = ["sled-io-", "log flusher"];

/// Lowers the calling thread to [`BACKGROUND_NICE`]. Linux keeps the nice value per
/// thread (setpriority(2), NOTES), so `setpriority(PRIO_PROCESS, 0)` changes this
/// thread only; threads it spawns inherit the value.
pub fn lower_this_thread() {
    if let Err(e) = rustix::process::setpriority_process(None, BACKGROUND_NICE) {
        // A sandbox that filters setpriority (systemd's `~@resources`; the shipped
        // unit allows it back): the daemon works, its checkpoints compete with ingest.
        tracing::warn!(error = %e, "cannot lower the store's background threads to nice 19");
    }
}

/// Lowers sled's threads to [`BACKGROUND_NICE`]. sled starts them itself (seven at
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
        if rustix::process::getpriority_process(Some(pid)).ok() == Some(BACKGROUND_NICE) {
            continue;
        }
        // The thread may have ended meanwhile (sled's extra IO threads do after a
        // second without work): nothing to lower then.
        if rustix::process::setpriority_process(Some(pid), BACKGROUND_NICE).is_ok() {
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
            // A thread it starts inherits the value.
            let child =
                std::thread::spawn(|| nice_of(rustix::thread::gettid().as_raw_nonzero().get()));
            assert_eq!(child.join().unwrap(), Some(BACKGROUND_NICE));
            tid
        })
        .join()
        .unwrap();
        assert_ne!(tid, rustix::thread::gettid().as_raw_nonzero().get());
        assert_eq!(
            nice_of(rustix::thread::gettid().as_raw_nonzero().get()),
            main_before,
            "the test's own thread keeps its priority"
        );
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
                    if nice != BACKGROUND_NICE {
                        assert!(lower_sled_threads().contains(&tid), "{comm}: nice {nice}");
                    }
                }
            }
        }
        assert!(seen > 0, "sled started no IO thread");
    }
}
