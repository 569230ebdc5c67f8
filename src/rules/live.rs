//! The rule set in force, and how it is replaced while the daemon runs.
//!
//! A reload compiles the whole directory; only if every file compiles is the new set
//! swapped in (correlation takes the current set once per batch, so the swap falls
//! between two alerts). Otherwise the old set stays in force and the error is kept
//! for `GET /api/v1/rules` and logged. Reloads come from the directory watcher
//! (notify, debounced, with a polling fallback) and from SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jiff::Timestamp;
use notify::Watcher;
use prometheus::IntCounterVec;
use serde::Serialize;

use super::{LoadError, RuleFile, Rules};
use crate::config::RuleEnv;

/// Quiet time after the last change before a reload: an editor's save is often
/// several events (write to a temporary file, rename, chmod).
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How often the polling fallback looks at the directory.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// What started a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Start,
    Watch,
    Sighup,
}

/// The outcome of the last load, for the API.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    pub at: Timestamp,
    pub trigger: Trigger,
    /// `ok` or `error`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<LoadErrorReport>,
}

/// A load error as JSON: where and what.
#[derive(Debug, Clone, Serialize)]
pub struct LoadErrorReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl From<&LoadError> for LoadErrorReport {
    fn from(e: &LoadError) -> Self {
        match e {
            LoadError::Dir { dir, message } => LoadErrorReport {
                file: Some(dir.display().to_string()),
                line: None,
                column: None,
                message: message.clone(),
            },
            LoadError::Compile {
                file,
                line,
                column,
                message,
            } => LoadErrorReport {
                file: Some(file.display().to_string()),
                line: Some(*line),
                column: Some(*column),
                message: message.clone(),
            },
        }
    }
}

/// What `GET /api/v1/rules` shows.
#[derive(Debug, Clone, Serialize)]
pub struct RulesStatus {
    pub dir: String,
    /// The files of the set in force, in the order they run.
    pub files: Vec<RuleFile>,
    /// When the set in force was loaded.
    pub loaded_at: Timestamp,
    pub last_reload: ReloadReport,
}

struct Source {
    dir: PathBuf,
    env: RuleEnv,
}

/// The rule set in force, shared by correlation, the API and the reloaders.
pub struct RuleSet {
    current: RwLock<(Arc<Rules>, Timestamp)>,
    source: Mutex<Source>,
    last: Mutex<ReloadReport>,
    /// `triaged_rules_reloads_total{result}`.
    reloads: IntCounterVec,
}

impl RuleSet {
    /// The set loaded at start.
    pub fn new(rules: Rules, dir: &Path, env: RuleEnv, reloads: IntCounterVec) -> RuleSet {
        let now = Timestamp::now();
        RuleSet {
            current: RwLock::new((Arc::new(rules), now)),
            source: Mutex::new(Source {
                dir: dir.to_path_buf(),
                env,
            }),
            last: Mutex::new(ReloadReport {
                at: now,
                trigger: Trigger::Start,
                result: "ok",
                error: None,
            }),
            reloads,
        }
    }

    /// The set in force.
    pub fn current(&self) -> Arc<Rules> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .0
            .clone()
    }

    /// Recompiles the directory; swaps the new set in only if all of it compiles.
    pub fn reload(&self, trigger: Trigger) -> Result<(), LoadError> {
        let source = self.source.lock().unwrap_or_else(|p| p.into_inner());
        self.load(&source, trigger)
    }

    /// Takes a new directory and environment (limits, services: a reloaded config)
    /// and reloads from them;
    /// they are kept only if the load succeeds.
    pub fn reconfigure(&self, dir: &Path, env: RuleEnv, trigger: Trigger) -> Result<(), LoadError> {
        let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner());
        let new = Source {
            dir: dir.to_path_buf(),
            env,
        };
        self.load(&new, trigger)?;
        *source = new;
        Ok(())
    }

    /// The directory the set is loaded from.
    pub fn dir(&self) -> PathBuf {
        self.source
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dir
            .clone()
    }

    fn load(&self, source: &Source, trigger: Trigger) -> Result<(), LoadError> {
        let loaded = Rules::load(&source.dir, &source.env);
        if trigger == Trigger::Watch {
            if let Ok(rules) = &loaded {
                // The same files as in force, after a successful load: nothing to do
                // (a change elsewhere in the directory, or an editor's temporary file).
                let same = self.current().files() == rules.files();
                let last_ok = self.last.lock().unwrap_or_else(|p| p.into_inner()).result == "ok";
                if same && last_ok {
                    return Ok(());
                }
            }
        }
        let at = Timestamp::now();
        let report = match &loaded {
            Ok(_) => ReloadReport {
                at,
                trigger,
                result: "ok",
                error: None,
            },
            Err(e) => ReloadReport {
                at,
                trigger,
                result: "error",
                error: Some(e.into()),
            },
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = report;
        match loaded {
            Ok(rules) => {
                let names: Vec<&str> = rules.files().iter().map(|f| f.name.as_str()).collect();
                tracing::info!(?trigger, files = ?names, "rules reloaded");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = (Arc::new(rules), at);
                self.reloads.with_label_values(&["success"]).inc();
                Ok(())
            }
            Err(e) => {
                tracing::error!(?trigger, error = %e, "rules not reloaded; the previous rules stay in force");
                self.reloads.with_label_values(&["failure"]).inc();
                Err(e)
            }
        }
    }

    pub fn status(&self) -> RulesStatus {
        let (rules, loaded_at) = {
            let cur = self.current.read().unwrap_or_else(|p| p.into_inner());
            (cur.0.clone(), cur.1)
        };
        RulesStatus {
            dir: self.dir().display().to_string(),
            files: rules.files().to_vec(),
            loaded_at,
            last_reload: self.last.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// Watches the rules directory and reloads on changes until dropped.
pub struct RulesWatcher {
    watcher: Option<Box<dyn Watcher + Send>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RulesWatcher {
    /// Starts watching `set`'s directory: inotify where it works, polling otherwise
    /// (network filesystems, an exhausted inotify watch limit).
    pub fn start(set: Arc<RuleSet>) -> anyhow::Result<RulesWatcher> {
        let dir = set.dir();
        let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
        let watcher: Box<dyn Watcher + Send> = match Self::inotify(&dir, tx.clone()) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the rules directory with inotify; polling it");
                let config = notify::Config::default()
                    .with_poll_interval(POLL_INTERVAL)
                    .with_compare_contents(true);
                let mut w = notify::PollWatcher::new(tx, config)?;
                w.watch(&dir, notify::RecursiveMode::NonRecursive)?;
                Box::new(w)
            }
        };
        let thread = std::thread::Builder::new()
            .name("rules-watch".into())
            .spawn(move || watch_loop(&set, &rx))?;
        Ok(RulesWatcher {
            watcher: Some(watcher),
            thread: Some(thread),
        })
    }

    fn inotify(
        dir: &Path,
        tx: mpsc::Sender<notify::Result<notify::Event>>,
    ) -> notify::Result<Box<dyn Watcher + Send>> {
        let mut w = notify::recommended_watcher(tx)?;
        w.watch(dir, notify::RecursiveMode::NonRecursive)?;
        Ok(Box::new(w))
    }
}

impl Drop for RulesWatcher {
    fn drop(&mut self) {
        // Dropping the notify watcher closes the channel; the thread then returns.
        drop(self.watcher.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Does this event call for a reload? Any change in the directory does, not only to
/// `*.rhai` names: a Kubernetes ConfigMap volume updates its files by swapping a
/// `..data` symlink, and the rule files are links through it. A reload that finds the
/// files unchanged changes nothing (see `RuleSet::load`).
fn relevant(event: &notify::Event) -> bool {
    !matches!(event.kind, notify::EventKind::Access(_))
}

fn watch_loop(set: &RuleSet, events: &mpsc::Receiver<notify::Result<notify::Event>>) {
    loop {
        // Wait for a relevant change…
        match events.recv() {
            Ok(Ok(e)) if relevant(&e) => {}
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "rules directory watch error");
                continue;
            }
            Err(_) => return,
        }
        // …then for quiet, so that one save is one reload.
        loop {
            match events.recv_timeout(DEBOUNCE) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        // The error is logged, counted and kept for the API by `reload`.
        let _ = set.reload(Trigger::Watch);
    }
}
