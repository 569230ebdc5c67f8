//! Log-file watchers (`[[log_watchers]]`): lines of files matching `paths` (globs in
//! the file name part) that match `match` become firing alerts (named captures become
//! labels), lines matching `resolve_match` resolve them; with a threshold, only `count`
//! matches within `window_secs` fire.
//!
//! Files are known by a fingerprint of their first line (up to 256 bytes), not by
//! name, so a file renamed by rotation is read on where it was left, a truncated or new
//! file from its start, and with copytruncate the copy (when `paths` covers it)
//! continues where the original was left. Each poll's alerts are submitted with the
//! read positions they were read up to, stored in one commit: a restart (even kill -9)
//! neither loses nor repeats a line. Partial last lines wait for their newline; lines
//! longer than `max_line_bytes` are cut and counted. notify wakes the loop on changes;
//! it also polls every second, for filesystems that do not notify.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::alerts::{Alert, AlertStatus, LabelSet, Source};

/// One `[[log_watchers]]` entry, validated.
#[derive(Debug, Clone)]
pub struct LogWatcher {
    pub name: String,
    /// (directory, file name pattern as written, its matcher).
    pub patterns: Vec<(PathBuf, String, globset::GlobMatcher)>,
    /// `match`; `None` when a script decides.
    pub matcher: Option<regex::Regex>,
    /// A script in `<rules.dir>/mappings/` with `fn on_line(line)`.
    pub script: Option<String>,
    pub resolve: Option<regex::Regex>,
    pub alertname: String,
    pub labels: LabelSet,
    /// Fire only after `count` matches within `window_secs` (per label set).
    pub threshold: Option<(u32, u64)>,
    /// A file first seen at start is read from its end (new lines only).
    pub start_at_end: bool,
    /// Files are known by device, inode and first-line checksum (`identify_by =
    /// "device_inode"`) instead of the checksum alone: two files with the same first
    /// line stay apart, but a copytruncate copy reads as a new file.
    pub by_inode: bool,
    pub max_line_bytes: usize,
}

impl PartialEq for LogWatcher {
    fn eq(&self, o: &Self) -> bool {
        let pats = |w: &LogWatcher| {
            w.patterns
                .iter()
                .map(|p| (p.0.clone(), p.1.clone()))
                .collect::<Vec<_>>()
        };
        self.name == o.name
            && pats(self) == pats(o)
            && self.matcher.as_ref().map(|r| r.as_str().to_string())
                == o.matcher.as_ref().map(|r| r.as_str().to_string())
            && self.script == o.script
            && self.resolve.as_ref().map(|r| r.as_str().to_string())
                == o.resolve.as_ref().map(|r| r.as_str().to_string())
            && self.alertname == o.alertname
            && self.labels == o.labels
            && self.threshold == o.threshold
            && self.start_at_end == o.start_at_end
            && self.by_inode == o.by_inode
            && self.max_line_bytes == o.max_line_bytes
    }
}

impl LogWatcher {
    /// What a line means by the watcher's patterns: a firing or resolved alert's
    /// labels, or nothing.
    pub fn classify(&self, line: &str) -> Option<(AlertStatus, LabelSet)> {
        let matcher = self.matcher.as_ref()?;
        let (status, re, caps) = match matcher.captures(line) {
            Some(c) => (AlertStatus::Firing, matcher, c),
            None => {
                let re = self.resolve.as_ref()?;
                (AlertStatus::Resolved, re, re.captures(line)?)
            }
        };
        let mut labels = self.labels.clone();
        for name in re.capture_names().flatten() {
            if let Some(m) = caps.name(name) {
                labels.insert(name.to_string(), m.as_str().to_string());
            }
        }
        labels.insert("alertname".into(), self.alertname.clone());
        Some((status, labels))
    }
}

/// Log watchers' `fn on_line(line)` scripts, compiled in the rules' sandbox.
pub struct LineScripts {
    engine: rhai::Engine,
    by_file: BTreeMap<String, rhai::AST>,
}

impl std::fmt::Debug for LineScripts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_file.keys()).finish()
    }
}

impl LineScripts {
    /// Compiles the scripts the settings' watchers name (from `<rules.dir>/mappings/`).
    pub fn load(
        settings: &crate::config::Settings,
    ) -> Result<LineScripts, crate::rules::LoadError> {
        let engine = crate::rules::engine(&settings.rules.env());
        let mut by_file = BTreeMap::new();
        for name in settings
            .log_watchers
            .iter()
            .filter_map(|w| w.script.clone())
        {
            let file = settings.rules.mappings_dir().join(&name);
            let src =
                std::fs::read_to_string(&file).map_err(|e| crate::rules::LoadError::Compile {
                    file: file.clone(),
                    line: 0,
                    column: 0,
                    message: format!("cannot read the script: {e}"),
                })?;
            let ast = crate::rules::compile_script(&engine, &file, &src)?;
            if !ast
                .iter_functions()
                .any(|f| f.name == "on_line" && f.params.len() == 1)
            {
                return Err(crate::rules::LoadError::Compile {
                    file,
                    line: 1,
                    column: 1,
                    message: "a log watcher's script defines fn on_line(line)".into(),
                });
            }
            by_file.insert(name, ast);
        }
        Ok(LineScripts { engine, by_file })
    }

    /// The alert a script makes of a line: `()` for none, or an alert map as webhook
    /// mappings return (alertname defaults to the watcher's, its labels are added).
    fn call(
        &self,
        w: &LogWatcher,
        file: &str,
        line: &str,
        now: Timestamp,
    ) -> Result<Option<Alert>, String> {
        let ast = self
            .by_file
            .get(file)
            .ok_or_else(|| format!("no script {file:?} loaded"))?;
        let result =
            crate::rules::call_under_deadline(&self.engine, ast, "on_line", (line.to_string(),))
                .map_err(|(_, m)| m)?;
        if result.is_unit() {
            return Ok(None);
        }
        let mut map = result
            .try_cast::<rhai::Map>()
            .ok_or("on_line must return an alert map or nothing")?;
        if !map.contains_key("alertname") {
            map.insert("alertname".into(), w.alertname.clone().into());
        }
        let mut labels: rhai::Map = map
            .get("labels")
            .and_then(|l| l.clone().try_cast::<rhai::Map>())
            .unwrap_or_default();
        for (k, v) in &w.labels {
            labels
                .entry(k.as_str().into())
                .or_insert_with(|| v.clone().into());
        }
        map.insert("labels".into(), rhai::Dynamic::from_map(labels));
        let (mut alert, _) = super::webhooks::alert_from_map(&map, now, &|f| f.to_string())
            .map_err(|e| format!("{}: {}", e.field, e.message))?;
        alert.source = Source::Log;
        Ok(Some(alert))
    }
}

/// The longest first line a fingerprint covers.
const HEAD: usize = 256;

/// A file's fingerprint: its first line (or first 256 bytes); `None` until that much
/// is written.
fn fingerprint(file: &mut std::fs::File) -> std::io::Result<Option<String>> {
    use sha2::Digest;
    let mut head = vec![0u8; HEAD];
    file.seek(SeekFrom::Start(0))?;
    let mut n = 0;
    while n < HEAD {
        let got = file.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let head = &head[..n];
    let line = match head.iter().position(|b| *b == b'\n') {
        Some(i) => &head[..=i],
        None if n == HEAD => head,
        None => return Ok(None),
    };
    Ok(Some(hex::encode(&sha2::Sha256::digest(line)[..8])))
}

/// Where the last complete line of a file ends (reading from the end, bounded).
fn end_of_last_line(file: &mut std::fs::File, len: u64) -> std::io::Result<u64> {
    let from = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    file.take(len - from).read_to_end(&mut tail)?;
    Ok(match tail.iter().rposition(|b| *b == b'\n') {
        Some(i) => from + i as u64 + 1,
        None => from,
    })
}

/// Most bytes read from one file per poll (the rest waits for the next one).
const READ_BUDGET: u64 = 4 << 20;

/// What one poll found: alerts and the positions reached.
#[derive(Debug, Default)]
pub struct Polled {
    pub alerts: Vec<Alert>,
    /// fingerprint → offset after the last complete line read.
    pub offsets: BTreeMap<String, u64>,
    pub lines: u64,
    pub matched: u64,
    pub truncated: u64,
    pub behind: u64,
    /// Lines the watcher's script failed on (logged; the line gives no alert).
    pub script_errors: u64,
}

/// A watcher's files and counts between polls.
pub struct Tailer {
    pub watcher: LogWatcher,
    scripts: Option<Arc<LineScripts>>,
    /// fingerprint → committed offset.
    offsets: HashMap<String, u64>,
    /// A poll has been committed: until then a file first seen honours `start_at_end`.
    started: bool,
    /// Threshold bookkeeping: recent match times per alert fingerprint.
    recent: HashMap<String, VecDeque<Timestamp>>,
    /// Files already complained about (unreadable), so each is logged once.
    complained: std::collections::HashSet<PathBuf>,
}

impl Tailer {
    /// Resumes from the offsets the store has for this watcher.
    pub fn new(
        watcher: LogWatcher,
        offsets: HashMap<String, u64>,
        scripts: Option<Arc<LineScripts>>,
    ) -> Tailer {
        Tailer {
            watcher,
            scripts,
            offsets,
            started: false,
            recent: HashMap::new(),
            complained: Default::default(),
        }
    }

    fn files(&mut self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for (dir, _, glob) in &self.watcher.patterns {
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) => {
                    if self.complained.insert(dir.clone()) {
                        tracing::warn!(watcher = %self.watcher.name, dir = %dir.display(), error = %e, "cannot list the directory; retrying");
                    }
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_file() && entry.file_name().to_str().is_some_and(|n| glob.is_match(n)) {
                    out.push(path);
                }
            }
        }
        out.sort();
        out
    }

    /// Reads what is new in every file (nothing is committed: see [`Tailer::commit`]).
    pub fn poll(&mut self, now: Timestamp) -> Polled {
        let mut polled = Polled::default();
        let first = !self.started;
        for path in self.files() {
            if let Err(e) = self.read_file(&path, first, now, &mut polled) {
                if self.complained.insert(path.clone()) {
                    tracing::warn!(watcher = %self.watcher.name, file = %path.display(), error = %e, "cannot read the file; retrying");
                }
            } else {
                self.complained.remove(&path);
            }
        }
        polled
    }

    fn read_file(
        &mut self,
        path: &Path,
        first: bool,
        now: Timestamp,
        polled: &mut Polled,
    ) -> std::io::Result<()> {
        let mut file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        let len = meta.len();
        let Some(fp) = fingerprint(&mut file)? else {
            return Ok(());
        };
        let fp = if self.watcher.by_inode {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}:{fp}", meta.dev(), meta.ino())
        } else {
            fp
        };
        let known = polled
            .offsets
            .get(&fp)
            .or_else(|| self.offsets.get(&fp))
            .copied();
        let mut offset = match known {
            Some(o) if o <= len => o,
            // Shorter than where we were: truncated and written again.
            Some(_) => 0,
            None if first && self.watcher.start_at_end => end_of_last_line(&mut file, len)?,
            None => 0,
        };
        if known.is_none() {
            // Record where it starts, so that a start-at-end position survives too.
            polled.offsets.insert(fp.clone(), offset);
        }
        if offset >= len {
            return Ok(());
        }
        file.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        (&mut file).take(READ_BUDGET).read_to_end(&mut buf)?;
        let mut start = 0;
        while let Some(i) = buf[start..].iter().position(|b| *b == b'\n') {
            let raw = &buf[start..start + i];
            start += i + 1;
            polled.lines += 1;
            let raw = if raw.len() > self.watcher.max_line_bytes {
                polled.truncated += 1;
                &raw[..self.watcher.max_line_bytes]
            } else {
                raw
            };
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_end_matches('\r');
            match self.line(line, now) {
                Ok(Some(alert)) => {
                    polled.matched += 1;
                    polled.alerts.push(alert);
                }
                Ok(None) => {}
                Err(e) => {
                    polled.script_errors += 1;
                    tracing::warn!(watcher = %self.watcher.name, error = %e, "log watcher script failed on a line");
                }
            }
        }
        offset += start as u64;
        // A line longer than the whole budget: cut it here and go on after it.
        if start == 0 && buf.len() as u64 == READ_BUDGET {
            polled.truncated += 1;
            offset += buf.len() as u64;
        }
        polled.behind += len.saturating_sub(offset);
        polled.offsets.insert(fp, offset);
        Ok(())
    }

    fn line(&mut self, line: &str, now: Timestamp) -> Result<Option<Alert>, String> {
        let (status, labels) = match (&self.watcher.script, &self.scripts) {
            (Some(file), Some(scripts)) => match scripts.call(&self.watcher, file, line, now)? {
                Some(a) => (a.status, a.labels),
                None => return Ok(None),
            },
            (Some(file), None) => return Err(format!("script {file} not loaded")),
            _ => match self.watcher.classify(line) {
                Some(x) => x,
                None => return Ok(None),
            },
        };
        let fingerprint = crate::alerts::fingerprint(&labels);
        if status == AlertStatus::Firing {
            if let Some((count, window)) = self.watcher.threshold {
                let times = self.recent.entry(fingerprint.clone()).or_default();
                times.push_back(now);
                let since = now
                    .checked_sub(jiff::SignedDuration::from_secs(window as i64))
                    .unwrap_or(Timestamp::MIN);
                while times.front().is_some_and(|t| *t < since) {
                    times.pop_front();
                }
                if (times.len() as u32) < count {
                    return Ok(None);
                }
            }
        } else {
            self.recent.remove(&fingerprint);
        }
        let mut annotations = LabelSet::new();
        annotations.insert("line".into(), line.chars().take(1024).collect());
        annotations.insert("log_watcher".into(), self.watcher.name.clone());
        Ok(Some(Alert {
            source: Source::Log,
            fingerprint,
            status,
            labels,
            annotations,
            starts_at: now,
            ends_at: (status == AlertStatus::Resolved).then_some(now),
            generator_url: None,
            received_at: now,
        }))
    }

    /// The positions of a poll are durable: later polls read on from them (until
    /// then a poll reads the same lines again).
    pub fn commit(&mut self, offsets: &BTreeMap<String, u64>) {
        self.started = true;
        self.offsets
            .extend(offsets.iter().map(|(k, v)| (k.clone(), *v)));
    }
}

/// Watches until `shutdown` fires.
pub async fn run(
    mut tailer: Tailer,
    queue: crate::correlation::Queue,
    metrics: Arc<crate::telemetry::Metrics>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let name = tailer.watcher.name.clone();
    let wake = Arc::new(tokio::sync::Notify::new());
    // notify for prompt reading; the one-second poll below is the fallback.
    let _watcher = {
        use notify::Watcher;
        let w = wake.clone();
        let handler = move |_res: notify::Result<notify::Event>| w.notify_one();
        match notify::recommended_watcher(handler) {
            Ok(mut watcher) => {
                for (dir, _, _) in &tailer.watcher.patterns {
                    if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                        tracing::info!(watcher = %name, dir = %dir.display(), error = %e, "not notified of changes; polling");
                    }
                }
                Some(watcher)
            }
            Err(e) => {
                tracing::info!(watcher = %name, error = %e, "no file notifications; polling");
                None
            }
        }
    };
    loop {
        let now = Timestamp::now();
        let (t, polled) = tokio::task::spawn_blocking(move || {
            let polled = tailer.poll(now);
            (tailer, polled)
        })
        .await
        .expect("the poll task does not panic");
        tailer = t;
        let m = &metrics;
        m.log_lines.with_label_values(&[&name]).inc_by(polled.lines);
        m.log_matched
            .with_label_values(&[&name])
            .inc_by(polled.matched);
        m.log_truncated
            .with_label_values(&[&name])
            .inc_by(polled.truncated);
        m.log_behind
            .with_label_values(&[&name])
            .set(polled.behind as i64);
        let changed: Vec<((String, String), u64)> = polled
            .offsets
            .iter()
            .map(|(fp, off)| ((name.clone(), fp.clone()), *off))
            .collect();
        if !changed.is_empty() || !polled.alerts.is_empty() {
            match queue.submit_logged(polled.alerts, changed).await {
                Ok(()) => tailer.commit(&polled.offsets),
                Err(e) => {
                    tracing::warn!(watcher = %name, error = %e, "log alerts not stored; reading them again");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {
                // Coalesce a burst of events.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watcher(dir: &Path) -> LogWatcher {
        LogWatcher {
            name: "w".into(),
            patterns: vec![(
                dir.to_path_buf(),
                "app.log*".into(),
                globset::Glob::new("app.log*").unwrap().compile_matcher(),
            )],
            matcher: Some(regex::Regex::new(r"ERROR (?P<code>\d+) seq=(?P<seq>\d+)").unwrap()),
            script: None,
            resolve: Some(regex::Regex::new(r"OK (?P<code>\d+) seq=(?P<seq>\d+)").unwrap()),
            alertname: "AppError".into(),
            labels: [("service".to_string(), "app".to_string())].into(),
            threshold: None,
            start_at_end: false,
            by_inode: false,
            max_line_bytes: 64,
        }
    }

    fn append(path: &Path, text: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn t() -> Timestamp {
        "2026-12-01T00:00:00Z".parse().unwrap()
    }

    fn seqs(p: &Polled) -> Vec<String> {
        p.alerts.iter().map(|a| a.labels["seq"].clone()).collect()
    }

    #[test]
    fn lines_match_wait_for_their_newline_and_follow_rename_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "start\nERROR 5 seq=1\nnoise\nERROR 5 seq=2\nERR");
        let mut t1 = Tailer::new(watcher(dir.path()), HashMap::new(), None);
        let p = t1.poll(t());
        assert_eq!(seqs(&p), ["1", "2"]);
        assert_eq!(p.alerts[0].labels["code"], "5");
        assert_eq!(p.alerts[0].labels["service"], "app");
        assert_eq!(
            (p.lines, p.matched, p.behind),
            (4, 2, 3),
            "the partial line waits"
        );
        t1.commit(&p.offsets);
        append(&log, "OR 5 seq=3\nOK 5 seq=1\n");
        let p = t1.poll(t());
        assert_eq!(seqs(&p), ["3", "1"]);
        assert_eq!(p.alerts[1].status, AlertStatus::Resolved);
        t1.commit(&p.offsets);
        // Not committed: read again (a failed submission).
        append(&log, "ERROR 5 seq=4\n");
        assert_eq!(seqs(&t1.poll(t())), ["4"]);
        let p = t1.poll(t());
        assert_eq!(seqs(&p), ["4"]);
        t1.commit(&p.offsets);
        // Rotation by rename: the old file is read on, the new one from its start.
        append(&log, "ERROR 5 seq=5\n");
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&log, "new file\nERROR 5 seq=6\nnoise line here\n");
        let p = t1.poll(t());
        let mut got = seqs(&p);
        got.sort();
        assert_eq!(got, ["5", "6"]);
        t1.commit(&p.offsets);
        // A restart resumes from what was committed.
        let stored: HashMap<String, u64> = t1.offsets.clone();
        let mut t2 = Tailer::new(watcher(dir.path()), stored, None);
        assert!(t2.poll(t()).alerts.is_empty());
        // Truncated and written again with the same first line: from the start.
        std::fs::write(&log, "new file\nERROR 7 seq=7\n").unwrap();
        let p = t2.poll(t());
        assert_eq!(seqs(&p), ["7"]);
        // A long line is cut and counted, not fatal.
        t2.commit(&p.offsets);
        append(&log, &format!("ERROR 8 seq=8 {}\n", "x".repeat(500)));
        let p = t2.poll(t());
        assert_eq!((seqs(&p), p.truncated), (vec!["8".to_string()], 1));
    }

    #[test]
    fn start_at_end_skips_what_was_there_and_thresholds_count_within_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "ERROR 1 seq=1\nERROR 1 seq=2\n");
        let mut w = watcher(dir.path());
        w.start_at_end = true;
        w.matcher = Some(regex::Regex::new(r"ERROR (?P<code>\d+)").unwrap());
        w.threshold = Some((3, 60));
        let mut tl = Tailer::new(w, HashMap::new(), None);
        let p = tl.poll(t());
        assert!(p.alerts.is_empty());
        tl.commit(&p.offsets);
        append(&log, "ERROR 1\nERROR 1\n");
        let p = tl.poll(t());
        assert!(p.alerts.is_empty(), "two of three");
        tl.commit(&p.offsets);
        let later = t()
            .checked_add(jiff::SignedDuration::from_secs(120))
            .unwrap();
        append(&log, "ERROR 1\n");
        let p = tl.poll(later);
        assert!(p.alerts.is_empty(), "the first two fell out of the window");
        tl.commit(&p.offsets);
        append(&log, "ERROR 1\nERROR 1\n");
        assert_eq!(tl.poll(later).alerts.len(), 1);
    }

    #[test]
    fn a_script_decides_what_a_line_means() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules/mappings")).unwrap();
        std::fs::write(
            dir.path().join("rules/mappings/lines.rhai"),
            r#"fn on_line(line) {
                let parts = line.split(" ");
                if parts.len() < 3 || parts[0] != "LEVEL=error" { return; }
                if parts[1] == "boom" { throw "bad line"; }
                #{ labels: #{ component: parts[1], code: parts[2] } }
            }"#,
        )
        .unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let src = format!(
            "[rules]\ndir = {:?}\n[[log_watchers]]\nname = \"s\"\npaths = [{:?}]\nscript = \"lines.rhai\"\n\
             alertname = \"ScriptedError\"\nlabels = {{ service = \"app\" }}\nstart = \"beginning\"\n",
            dir.path().join("rules").display().to_string(),
            logs.join("*.log").display().to_string()
        );
        let settings =
            crate::config::Settings::from_toml(Path::new("t.toml"), &src, &Default::default())
                .unwrap();
        let scripts = Arc::new(LineScripts::load(&settings).unwrap());
        append(
            &logs.join("a.log"),
            "LEVEL=error db 42\nLEVEL=info db 1\nLEVEL=error boom 1\n",
        );
        let mut tl = Tailer::new(
            settings.log_watchers[0].clone(),
            HashMap::new(),
            Some(scripts),
        );
        let p = tl.poll(t());
        assert_eq!(p.alerts.len(), 1);
        let a = &p.alerts[0];
        assert_eq!(a.labels["alertname"], "ScriptedError");
        assert_eq!(
            (a.labels["component"].as_str(), a.labels["code"].as_str()),
            ("db", "42")
        );
        assert_eq!(a.labels["service"], "app");
        assert_eq!(a.source, Source::Log);
        assert_eq!((p.lines, p.script_errors), (3, 1));
        // A script without on_line is refused at load.
        std::fs::write(
            dir.path().join("rules/mappings/lines.rhai"),
            "fn other(x) {}",
        )
        .unwrap();
        assert!(LineScripts::load(&settings)
            .unwrap_err()
            .to_string()
            .contains("on_line"));
    }

    #[test]
    fn by_device_and_inode_files_with_the_same_first_line_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("app.log");
        let b = dir.path().join("app.log.2");
        append(&a, "header\nERROR 1 seq=1\n");
        append(&b, "header\nERROR 1 seq=2\n");
        // By checksum alone the two are one file: the second is read on from the first's
        // offset (nothing new) — the documented trade-off.
        let mut tl = Tailer::new(watcher(dir.path()), HashMap::new(), None);
        assert_eq!(tl.poll(t()).alerts.len(), 1);
        let mut w = watcher(dir.path());
        w.by_inode = true;
        let mut tl = Tailer::new(w, HashMap::new(), None);
        let p = tl.poll(t());
        let mut got = seqs(&p);
        got.sort();
        assert_eq!(got, ["1", "2"]);
        tl.commit(&p.offsets);
        // A rename keeps device and inode: read on, not again.
        std::fs::rename(&a, dir.path().join("app.log.1")).unwrap();
        append(&dir.path().join("app.log.1"), "ERROR 1 seq=3\n");
        assert_eq!(seqs(&tl.poll(t())), ["3"]);
    }
}
