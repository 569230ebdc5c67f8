//! Correlation rules: Rhai scripts in the rules directory, run in file-name order.
//!
//! Owns the Rhai engine, its sandbox (no modules, no `eval`, limits on operations,
//! depth and sizes) and the mapping between rule results and [`Verdict`]s. A rule that
//! throws, exceeds a limit or returns something malformed never stops the daemon: the
//! failure is returned for the caller to log and count, and the alert goes on to the
//! next script and finally to the built-in default. No IO besides reading the scripts
//! at load time.

pub mod fixtures;
mod live;
pub mod tool;

use std::fmt;
use std::path::{Path, PathBuf};

use rhai::{CallFnOptions, Dynamic, Engine, Map, Scope, AST};

use crate::alerts::{Alert, LabelSet};
use crate::config::{RuleEnv, Service};
use crate::incidents::{Incident, IncidentSpec, Level};
use crate::problems::ProblemSpec;

pub use live::{LoadErrorReport, ReloadReport, RuleSet, RulesStatus, RulesWatcher, Trigger};

thread_local! {
    /// When the hook call running on this thread started, for the deadline.
    static CALL_STARTED: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
    /// `now()` of the decision running on this thread: the alert's receive time.
    static CALL_NOW: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// What rules may ask about the past: answered by correlation from the store and the
/// batch in progress.
pub trait History {
    /// How many incidents with correlation key `key` opened at or after `since`.
    fn incidents_for_key(&self, key: &str, since: jiff::Timestamp) -> Result<u64, String>;
    /// How many changes on `service` have a window overlapping `since..=until`.
    fn changes_for_service(
        &self,
        service: &str,
        since: jiff::Timestamp,
        until: jiff::Timestamp,
    ) -> Result<u64, String>;
}

/// No history (`triaged rules eval`, fixture cases): every count is 0.
pub struct NoHistory;

impl History for NoHistory {
    fn incidents_for_key(&self, _: &str, _: jiff::Timestamp) -> Result<u64, String> {
        Ok(0)
    }
    fn changes_for_service(
        &self,
        _: &str,
        _: jiff::Timestamp,
        _: jiff::Timestamp,
    ) -> Result<u64, String> {
        Ok(0)
    }
}

thread_local! {
    /// The history of the decision running on this thread (see `with_history`).
    static HISTORY: std::cell::Cell<Option<*const (dyn History + 'static)>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` with `history` reachable from the host functions on this thread.
fn with_history<R>(history: &dyn History, f: impl FnOnce() -> R) -> R {
    /// Clears the pointer when `f` returns or unwinds.
    struct Clear;
    impl Drop for Clear {
        fn drop(&mut self) {
            HISTORY.set(None);
        }
    }
    let ptr: *const (dyn History + '_) = history;
    // SAFETY: only the lifetime is erased. The pointer is read by `history_count`
    // during `f`, while `history` is still borrowed, and `Clear` removes it before
    // this function returns, also on unwind; decisions do not nest.
    let ptr: *const (dyn History + 'static) = unsafe { std::mem::transmute(ptr) };
    HISTORY.set(Some(ptr));
    let _clear = Clear;
    f()
}

/// Asks the decision's history (0 without one) about the `window_secs` before the
/// alert's time: `ask(history, since, now)`.
fn ask_history(
    function: &str,
    window_secs: i64,
    ask: impl FnOnce(&dyn History, jiff::Timestamp, jiff::Timestamp) -> Result<u64, String>,
) -> Result<i64, Box<rhai::EvalAltResult>> {
    if window_secs < 0 {
        return Err(
            format!("{function}: window_secs must not be negative, got {window_secs}").into(),
        );
    }
    let now = CALL_NOW
        .get()
        .unwrap_or_else(|| jiff::Timestamp::now().as_second());
    let until = jiff::Timestamp::from_second(now).unwrap_or(jiff::Timestamp::MAX);
    let since = jiff::Timestamp::from_second(now.saturating_sub(window_secs))
        .unwrap_or(jiff::Timestamp::MIN);
    let Some(ptr) = HISTORY.get() else {
        return Ok(0);
    };
    // SAFETY: set by `with_history` for the duration of the decision running on this
    // thread, during which the referent is borrowed (see there).
    let history = unsafe { &*ptr };
    ask(history, since, until)
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
        .map_err(|e| format!("{function}: {e}").into())
}

/// `incidents_for_key(key, window_secs)`.
fn history_count(key: &str, window_secs: i64) -> Result<i64, Box<rhai::EvalAltResult>> {
    ask_history("incidents_for_key", window_secs, |h, since, _| {
        h.incidents_for_key(key, since)
    })
}

/// `changes_for_service(service, window_secs)`: changes whose window overlaps the
/// last `window_secs` (one still running counts).
fn change_count(service: &str, window_secs: i64) -> Result<i64, Box<rhai::EvalAltResult>> {
    ask_history("changes_for_service", window_secs, |h, since, until| {
        h.changes_for_service(service, since, until)
    })
}

/// The name the built-in decision is recorded under.
pub const DEFAULT_RULE: &str = "default";

/// What correlation does with an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Incident(IncidentSpec),
    Drop(String),
}

/// An outcome and the rule (script file name, or `default`) that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub rule: String,
    pub outcome: Outcome,
}

/// A rule that failed on one alert; its result was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFailure {
    pub rule: String,
    pub function: &'static str,
    /// Bounded, for metrics: `runtime`, `limit`, `malformed`.
    pub kind: &'static str,
    pub message: String,
}

/// A rules directory that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    #[error("{dir}: cannot read rules directory: {message}")]
    Dir { dir: PathBuf, message: String },
    #[error("{}:{line}:{column}: {message}", file.display())]
    Compile {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// What a script's `incident(...)` or `drop(...)` built; the type Rhai scripts return.
#[derive(Debug, Clone)]
enum Decision {
    Incident(Map),
    Drop(String),
    Problem(Map),
}

struct Script {
    name: String,
    ast: AST,
    on_alert: bool,
    on_incident: bool,
}

/// The counts `on_incident` gets as `history`: incidents of the incident's key opened
/// in the last hour, day and week, the incident itself included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IncidentHistory {
    pub last_hour: u64,
    pub last_day: u64,
    pub last_week: u64,
}

/// A file of a compiled rule set, as `GET /api/v1/rules` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleFile {
    pub name: String,
    /// SHA-256 of the file's content, hex.
    pub sha256: String,
    /// The hooks it defines (`on_alert`).
    pub hooks: Vec<String>,
}

/// A compiled rule set.
pub struct Rules {
    engine: Engine,
    scripts: Vec<Script>,
    files: Vec<RuleFile>,
    /// The service catalogue: the default impact of an incident on a known service.
    services: std::collections::BTreeMap<String, Service>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("scripts", &self.script_names())
            .finish()
    }
}

/// Patterns `regex_match` keeps compiled (per rule set); past this the cache is
/// emptied and refilled, so a rule building patterns from alert text cannot grow it.
const REGEX_CACHE: usize = 1024;
/// Compiled size limit of one pattern (the `regex` crate matches in linear time, so
/// size is the only cost to bound).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The sandboxed engine: only the functions rules need, bounded by `env.limits`.
/// The sandboxed engine rules (and webhook mappings) run in.
pub(crate) fn engine(env: &RuleEnv) -> Engine {
    let limits = &env.limits;
    let mut engine = Engine::new();
    // Rhai's string interner spent ~10 % of rule evaluation keeping its cache trimmed
    // (perf on `cargo bench --bench rules`); rules build few repeated strings.
    engine.set_max_strings_interned(0);
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    // Rules get no code loading: `eval` and `import` are compile errors.
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_levels);
    engine.set_max_expr_depths(limits.max_expr_depth, limits.max_expr_depth);
    engine.set_max_string_size(limits.max_string_size);
    engine.set_max_array_size(limits.max_array_size);
    engine.set_max_map_size(limits.max_map_size);
    // The wall-clock deadline: checked every 256 operations against the start of the
    // current hook call (set by `call_hook` on this thread).
    let max_call = limits.max_call;
    engine.on_progress(move |ops| {
        if ops % 256 != 0 {
            return None;
        }
        let started = CALL_STARTED.get()?;
        (started.elapsed() > max_call)
            .then(|| Dynamic::from(format!("deadline of {} ms exceeded", max_call.as_millis())))
    });
    engine.on_print(|text| tracing::info!(target: "triaged::rules", "{text}"));
    engine.on_debug(|text, source, pos| {
        tracing::debug!(target: "triaged::rules", source = source.unwrap_or(""), %pos, "{text}")
    });
    engine.register_type_with_name::<Decision>("Decision");
    engine.register_fn("incident", Decision::Incident);
    engine.register_fn("problem", Decision::Problem);
    engine.register_fn("drop", |reason: &str| Decision::Drop(reason.to_string()));
    register_host_functions(&mut engine, env);
    engine
}

/// `now()`, `parse_time(text)`, `regex_match(pattern, text)`, `label(alert, name,
/// default)` and `service(name)`: pure (given the alert's receive time) and bounded.
fn register_host_functions(engine: &mut Engine, env: &RuleEnv) {
    use rhai::EvalAltResult;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    // The time the alert was received: a decision does not depend on when it is
    // replayed or tested.
    engine.register_fn("now", || -> i64 {
        CALL_NOW
            .get()
            .unwrap_or_else(|| jiff::Timestamp::now().as_second())
    });
    engine.register_fn("incidents_for_key", history_count);
    engine.register_fn("changes_for_service", change_count);
    engine.register_fn(
        "parse_time",
        |text: &str| -> Result<i64, Box<EvalAltResult>> {
            text.parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .map_err(|e| format!("parse_time({text:?}): {e}").into())
        },
    );
    let cache: Arc<Mutex<HashMap<String, regex::Regex>>> = Arc::default();
    engine.register_fn(
        "regex_match",
        move |pattern: &str, text: &str| -> Result<bool, Box<EvalAltResult>> {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(re) = cache.get(pattern) {
                return Ok(re.is_match(text));
            }
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("regex_match: bad pattern {pattern:?}: {e}"))?;
            let matched = re.is_match(text);
            if cache.len() >= REGEX_CACHE {
                cache.clear();
            }
            cache.insert(pattern.to_string(), re);
            Ok(matched)
        },
    );
    engine.register_fn(
        "label",
        |alert: &mut Map, name: &str, default: Dynamic| -> Dynamic {
            alert
                .get("labels")
                .and_then(|l| l.read_lock::<Map>().and_then(|m| m.get(name).cloned()))
                .unwrap_or(default)
        },
    );
    let services: Arc<std::collections::BTreeMap<String, Service>> = Arc::new(env.services.clone());
    engine.register_fn("service", move |name: &str| -> Dynamic {
        let Some(s) = services.get(name) else {
            return Dynamic::UNIT;
        };
        let text = |v: &Option<String>| v.clone().map_or(Dynamic::UNIT, Dynamic::from);
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("owner".into(), text(&s.owner));
        m.insert("tier".into(), text(&s.tier));
        m.insert(
            "impact".into(),
            s.impact
                .map_or(Dynamic::UNIT, |l| Dynamic::from(l.as_str().to_string())),
        );
        Dynamic::from_map(m)
    });
}

/// Compiles one script; an error names the file, line and column.
pub(crate) fn compile_script(engine: &Engine, file: &Path, src: &str) -> Result<AST, LoadError> {
    engine.compile(src).map_err(|e| LoadError::Compile {
        file: file.to_path_buf(),
        line: e.1.line().unwrap_or(0),
        column: e.1.position().unwrap_or(0),
        message: e.0.to_string(),
    })
}

/// Calls a script function with the sandbox's wall-clock deadline; an error is its
/// bounded kind (`limit` or `runtime`, for metrics) and message. Mappings use it too.
pub(crate) fn call_under_deadline(
    engine: &Engine,
    ast: &AST,
    function: &str,
    args: impl rhai::FuncArgs,
) -> Result<Dynamic, (&'static str, String)> {
    let mut scope = Scope::new();
    let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
    CALL_STARTED.set(Some(std::time::Instant::now()));
    let called: Result<Dynamic, _> =
        engine.call_fn_with_options(options, &mut scope, ast, function, args);
    CALL_STARTED.set(None);
    called.map_err(|e| {
        use rhai::EvalAltResult as E;
        let kind = match *e {
            E::ErrorTerminated(..)
            | E::ErrorTooManyOperations(_)
            | E::ErrorStackOverflow(_)
            | E::ErrorDataTooLarge(..)
            | E::ErrorTooManyVariables(_)
            | E::ErrorTooManyModules(_) => "limit",
            _ => "runtime",
        };
        let message = match &*e {
            // Rhai's text for this is "Script terminated"; say which limit.
            E::ErrorTerminated(why, pos) => format!("{why} ({pos})"),
            _ => e.to_string(),
        };
        (kind, message)
    })
}

impl Rules {
    /// Compiles every `*.rhai` file in `dir`, in file-name order.
    pub fn load(dir: &Path, env: &RuleEnv) -> Result<Rules, LoadError> {
        let dir_err = |e: std::io::Error| LoadError::Dir {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(dir_err)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(dir_err)?;
        files.retain(|p| p.extension().is_some_and(|e| e == "rhai") && p.is_file());
        files.sort();
        let mut sources = Vec::with_capacity(files.len());
        for file in files {
            let src = std::fs::read_to_string(&file).map_err(|e| LoadError::Compile {
                file: file.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read: {e}"),
            })?;
            sources.push((file, src));
        }
        Rules::compile(sources, env)
    }

    /// Compiles scripts given as (path, source); the path names the rule.
    pub fn compile(sources: Vec<(PathBuf, String)>, env: &RuleEnv) -> Result<Rules, LoadError> {
        let engine = engine(env);
        let mut scripts = Vec::with_capacity(sources.len());
        let mut files = Vec::with_capacity(sources.len());
        for (file, src) in sources {
            use sha2::Digest;
            let sha256 = hex::encode(sha2::Sha256::digest(src.as_bytes()));
            let ast = compile_script(&engine, &file, &src)?;
            let name = file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| file.display().to_string());
            let arity = |hook: &str| {
                ast.iter_functions()
                    .find(|f| f.name == hook)
                    .map(|f| f.params.len())
            };
            for (hook, params, what) in [
                ("on_alert", 1, "one parameter (the alert)"),
                (
                    "on_incident",
                    2,
                    "two parameters (the incident and its history)",
                ),
            ] {
                if arity(hook).is_some_and(|n| n != params) {
                    return Err(LoadError::Compile {
                        file,
                        line: 1,
                        column: 1,
                        message: format!("{hook} must take exactly {what}"),
                    });
                }
            }
            let on_alert = arity("on_alert").is_some();
            let on_incident = arity("on_incident").is_some();
            let hooks: Vec<String> = [("on_alert", on_alert), ("on_incident", on_incident)]
                .into_iter()
                .filter(|(_, has)| *has)
                .map(|(h, _)| h.to_string())
                .collect();
            files.push(RuleFile {
                name: name.clone(),
                sha256,
                hooks,
            });
            if on_alert || on_incident {
                scripts.push(Script {
                    name,
                    ast,
                    on_alert,
                    on_incident,
                });
            }
        }
        Ok(Rules {
            engine,
            scripts,
            files,
            services: env.services.clone(),
        })
    }

    /// Every compiled file, in the order they run.
    pub fn files(&self) -> &[RuleFile] {
        &self.files
    }

    /// Whether any script defines `on_incident` (else there is nothing to ask).
    pub fn has_on_incident(&self) -> bool {
        self.scripts.iter().any(|s| s.on_incident)
    }

    /// The scripts that define a hook (on_alert, on_incident), in the order they run.
    pub fn script_names(&self) -> Vec<&str> {
        self.scripts.iter().map(|s| s.name.as_str()).collect()
    }

    /// Runs `on_alert` of each script until one decides; the built-in default otherwise.
    pub fn decide(&self, alert: &Alert) -> (Verdict, Vec<RuleFailure>) {
        self.decide_with(alert, &NoHistory)
    }

    /// `decide`, with `history` answering `incidents_for_key`.
    pub fn decide_with(&self, alert: &Alert, history: &dyn History) -> (Verdict, Vec<RuleFailure>) {
        CALL_NOW.set(Some(alert.received_at.as_second()));
        let decided = with_history(history, || self.decide_now(alert));
        CALL_NOW.set(None);
        decided
    }

    fn decide_now(&self, alert: &Alert) -> (Verdict, Vec<RuleFailure>) {
        let mut failures = Vec::new();
        if !self.scripts.is_empty() {
            let input = Dynamic::from_map(alert_map(alert)).into_shared();
            for script in self.scripts.iter().filter(|s| s.on_alert) {
                match self.call_on_alert(script, input.clone(), alert) {
                    Ok(Some(outcome)) => {
                        let verdict = Verdict {
                            rule: script.name.clone(),
                            outcome,
                        };
                        return (verdict, failures);
                    }
                    Ok(None) => {}
                    Err(f) => failures.push(f),
                }
            }
        }
        let verdict = Verdict {
            rule: DEFAULT_RULE.to_string(),
            outcome: Outcome::Incident(self.with_service_impact(default_spec(alert), None)),
        };
        (verdict, failures)
    }

    /// The impact a rule gave, else the catalogue's for the spec's service, else medium.
    fn with_service_impact(&self, mut spec: IncidentSpec, given: Option<Level>) -> IncidentSpec {
        spec.impact = given
            .or_else(|| {
                spec.service
                    .as_deref()
                    .and_then(|s| self.services.get(s))
                    .and_then(|s| s.impact)
            })
            .unwrap_or(Level::Medium);
        spec
    }

    /// Calls one hook under the deadline; errors become `RuleFailure`s.
    fn call_hook(
        &self,
        script: &Script,
        function: &'static str,
        args: impl rhai::FuncArgs,
    ) -> Result<Dynamic, RuleFailure> {
        call_under_deadline(&self.engine, &script.ast, function, args).map_err(|(kind, message)| {
            RuleFailure {
                rule: script.name.clone(),
                function,
                kind,
                message,
            }
        })
    }

    fn call_on_alert(
        &self,
        script: &Script,
        input: Dynamic,
        alert: &Alert,
    ) -> Result<Option<Outcome>, RuleFailure> {
        let failure = |kind: &'static str, message: String| RuleFailure {
            rule: script.name.clone(),
            function: "on_alert",
            kind,
            message,
        };
        let result = self.call_hook(script, "on_alert", (input,))?;
        if result.is_unit() {
            return Ok(None);
        }
        let Some(decision) = result.clone().try_cast::<Decision>() else {
            return Err(failure(
                "malformed",
                format!(
                    "on_alert must return incident(#{{...}}), drop(reason) or nothing, got a {}",
                    result.type_name()
                ),
            ));
        };
        match decision {
            Decision::Drop(reason) => Ok(Some(Outcome::Drop(reason))),
            Decision::Incident(map) => spec_from_map(&map, alert)
                .map(|(spec, impact)| {
                    Some(Outcome::Incident(self.with_service_impact(spec, impact)))
                })
                .map_err(|m| failure("malformed", m)),
            Decision::Problem(_) => Err(failure(
                "malformed",
                "problem(...) is a decision of on_incident, not of on_alert".into(),
            )),
        }
    }

    /// Runs `on_incident` of each script (in file-name order) for a newly opened
    /// incident until one returns `problem(#{ key, title })`: that rule and spec.
    pub fn decide_incident(
        &self,
        incident: &Incident,
        history: IncidentHistory,
        store_history: &dyn History,
        now: jiff::Timestamp,
    ) -> (Option<(String, ProblemSpec)>, Vec<RuleFailure>) {
        let mut failures = Vec::new();
        if !self.has_on_incident() {
            return (None, failures);
        }
        CALL_NOW.set(Some(now.as_second()));
        let decided = with_history(store_history, || {
            let input = Dynamic::from_map(incident_map(incident));
            let mut h = Map::new();
            h.insert("key".into(), incident.key.clone().into());
            for (name, n) in [
                ("last_hour", history.last_hour),
                ("last_day", history.last_day),
                ("last_week", history.last_week),
            ] {
                h.insert(
                    name.into(),
                    Dynamic::from(i64::try_from(n).unwrap_or(i64::MAX)),
                );
            }
            let history = Dynamic::from_map(h);
            for script in self.scripts.iter().filter(|s| s.on_incident) {
                let failure = |kind: &'static str, message: String| RuleFailure {
                    rule: script.name.clone(),
                    function: "on_incident",
                    kind,
                    message,
                };
                let result =
                    match self.call_hook(script, "on_incident", (input.clone(), history.clone())) {
                        Ok(r) => r,
                        Err(f) => {
                            failures.push(f);
                            continue;
                        }
                    };
                if result.is_unit() {
                    continue;
                }
                match result.clone().try_cast::<Decision>() {
                    Some(Decision::Problem(map)) => match problem_from_map(&map, incident) {
                        Ok(spec) => return Some((script.name.clone(), spec)),
                        Err(m) => failures.push(failure("malformed", m)),
                    },
                    _ => failures.push(failure(
                        "malformed",
                        format!(
                            "on_incident must return problem(#{{...}}) or nothing, got a {}",
                            result.type_name()
                        ),
                    )),
                }
            }
            None
        });
        CALL_NOW.set(None);
        (decided, failures)
    }
}

fn label_map(labels: &LabelSet) -> Map {
    labels
        .iter()
        .map(|(k, v)| (k.as_str().into(), Dynamic::from(v.clone())))
        .collect()
}

/// The alert as rules read it.
fn alert_map(alert: &Alert) -> Map {
    let mut m = Map::new();
    m.insert("source".into(), alert.source.as_str().into());
    m.insert("fingerprint".into(), alert.fingerprint.clone().into());
    m.insert("status".into(), alert.status.as_str().into());
    m.insert("labels".into(), Dynamic::from_map(label_map(&alert.labels)));
    m.insert(
        "annotations".into(),
        Dynamic::from_map(label_map(&alert.annotations)),
    );
    m.insert("starts_at".into(), alert.starts_at.to_string().into());
    m.insert(
        "generator_url".into(),
        alert
            .generator_url
            .clone()
            .map_or(Dynamic::UNIT, Dynamic::from),
    );
    m
}

/// A decision map's text field (`what`: incident or problem); `()` is absent.
fn optional_string(map: &Map, what: &str, field: &str) -> Result<Option<String>, String> {
    match map.get(field) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => v
            .clone()
            .into_immutable_string()
            .map(|s| Some(s.to_string()))
            .map_err(|t| format!("{what} field {field} must be a string, got {t}")),
    }
}

fn level(map: &Map, field: &str) -> Result<Option<Level>, String> {
    match optional_string(map, "incident", field)? {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|e| format!("incident field {field}: {e}")),
    }
}

/// Turns the map a rule passed to `incident(...)` into a spec (`key` is required) and
/// the impact it gave, if any (the caller fills it in from the service catalogue).
fn spec_from_map(map: &Map, alert: &Alert) -> Result<(IncidentSpec, Option<Level>), String> {
    const FIELDS: [&str; 8] = [
        "key", "title", "service", "ci", "impact", "urgency", "major", "sinks",
    ];
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown incident field {unknown:?}, expected one of {}",
            FIELDS.join(", ")
        ));
    }
    let key = optional_string(map, "incident", "key")?
        .filter(|k| !k.trim().is_empty())
        .ok_or("incident(#{...}) needs a non-empty key")?;
    let defaults = default_spec(alert);
    let major = match map.get("major") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|t| format!("incident field major must be a bool, got {t}"))?,
    };
    let impact = level(map, "impact")?;
    let sinks = match map.get("sinks") {
        None => Vec::new(),
        Some(v) if v.is_unit() => Vec::new(),
        Some(v) => {
            let list = v
                .clone()
                .into_typed_array::<rhai::ImmutableString>()
                .map_err(|t| {
                    format!("incident field sinks must be an array of strings, got {t}")
                })?;
            let mut out = Vec::new();
            for s in list {
                s.parse::<crate::outbox::Target>()
                    .map_err(|e| format!("incident field sinks: {e}"))?;
                out.push(s.to_string());
            }
            out
        }
    };
    let spec = IncidentSpec {
        sinks,
        key,
        title: optional_string(map, "incident", "title")?.unwrap_or(defaults.title),
        service: optional_string(map, "incident", "service")?.or(defaults.service),
        ci: optional_string(map, "incident", "ci")?.or(defaults.ci),
        impact: impact.unwrap_or(Level::Medium),
        urgency: level(map, "urgency")?.unwrap_or(Level::Medium),
        major,
    };
    Ok((spec, impact))
}

/// The incident as `on_incident` reads it.
fn incident_map(i: &Incident) -> Map {
    let text = |v: &Option<String>| v.clone().map_or(Dynamic::UNIT, Dynamic::from);
    let mut m = Map::new();
    m.insert("id".into(), i.id.to_string().into());
    m.insert("key".into(), i.key.clone().into());
    m.insert("title".into(), i.title.clone().into());
    m.insert("service".into(), text(&i.service));
    m.insert("ci".into(), text(&i.ci));
    m.insert("impact".into(), i.impact.as_str().into());
    m.insert("urgency".into(), i.urgency.as_str().into());
    m.insert("priority".into(), format!("{:?}", i.priority).into());
    m.insert("major".into(), i.major.into());
    m.insert("status".into(), i.status.as_str().into());
    m.insert("opened_by".into(), i.opened_by.clone().into());
    m.insert("opened_at".into(), i.opened_at.to_string().into());
    m.insert(
        "alerts_total".into(),
        Dynamic::from(i64::try_from(i.alerts_total).unwrap_or(i64::MAX)),
    );
    m.insert("reopened".into(), Dynamic::from(i64::from(i.reopened)));
    m.insert(
        "previous".into(),
        i.previous
            .map_or(Dynamic::UNIT, |p| Dynamic::from(p.to_string())),
    );
    m
}

/// Turns the map a rule passed to `problem(...)` into a spec; `key` is required.
fn problem_from_map(map: &Map, incident: &Incident) -> Result<ProblemSpec, String> {
    const FIELDS: [&str; 3] = ["key", "title", "link_recent_secs"];
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "unknown problem field {unknown:?}, expected one of {}",
            FIELDS.join(", ")
        ));
    }
    let field = |name: &str| optional_string(map, "problem", name);
    let key = field("key")?
        .filter(|k| !k.trim().is_empty())
        .ok_or("problem(#{...}) needs a non-empty key")?;
    let link_recent_secs = match map.get("link_recent_secs") {
        None => 0,
        Some(v) => v
            .as_int()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                format!(
                    "problem field link_recent_secs must be a number of seconds, got {}",
                    v.type_name()
                )
            })?,
    };
    Ok(ProblemSpec {
        key,
        title: field("title")?.unwrap_or_else(|| incident.title.clone()),
        link_recent_secs,
    })
}

/// The built-in decision: one incident per alertname and service (or job).
pub fn default_spec(alert: &Alert) -> IncidentSpec {
    let service = alert.label("service").or_else(|| alert.label("job"));
    let name = alert.name();
    IncidentSpec {
        key: format!("{name}/{}", service.unwrap_or("")),
        title: alert
            .annotations
            .get("summary")
            .cloned()
            .unwrap_or_else(|| name.to_string()),
        service: service.map(str::to_string),
        ci: alert.label("instance").map(str::to_string),
        impact: Level::Medium,
        urgency: Level::Medium,
        major: false,
        sinks: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
