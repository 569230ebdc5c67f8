//! Routing: which sinks an outbox event goes to. Pure.
//!
//! `[[routes]]` are tried in order like Alertmanager's routes: the first that matches
//! takes the event, unless it says `continue = true`, then the next ones are tried
//! too. A route matches on the event kind, the incident's service, priority and labels
//! (the labels of the alert that opened it, after the rules), every given condition
//! having to hold. Besides the routes, an incident's rule decision may name sinks
//! (`sinks` in `incident(#{…})`) and an escalation level names its `notify` targets;
//! those get the event too. A quiet event (silenced, in a maintenance or change
//! window) goes only to routes with `quiet = true`: it is recorded, not paged.

use std::collections::BTreeMap;

use super::{EventKind, Target};
use crate::incidents::Priority;
use crate::silences::Matcher;

/// One `[[routes]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Any of these services (empty: any).
    pub services: Vec<String>,
    /// Any of these priorities (empty: any).
    pub priorities: Vec<Priority>,
    /// Any of these event kinds (empty: any).
    pub events: Vec<EventKind>,
    /// All of these on the incident's labels.
    pub matchers: Vec<Matcher>,
    pub sinks: Vec<Target>,
    /// Go on to the next routes after this one matched.
    pub continue_matching: bool,
    /// Also take quiet events.
    pub quiet: bool,
}

/// What routing looks at.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub kind: EventKind,
    pub service: Option<&'a str>,
    pub priority: Option<Priority>,
    pub labels: &'a BTreeMap<String, String>,
    /// Sinks the rule decision named.
    pub named: &'a [String],
    /// Targets the policy that raised the event named (escalation, SLA breach).
    pub notify: &'a [String],
    pub quiet: bool,
}

impl Route {
    fn matches(&self, s: &Subject<'_>) -> bool {
        (self.events.is_empty() || self.events.contains(&s.kind))
            && (self.services.is_empty()
                || s.service
                    .is_some_and(|v| self.services.iter().any(|x| x == v)))
            && (self.priorities.is_empty()
                || s.priority.is_some_and(|p| self.priorities.contains(&p)))
            && self.matchers.iter().all(|m| m.matches(s.labels))
            && (self.quiet || !s.quiet)
    }
}

/// The routes in force, swapped whole by a config reload; correlation takes them once
/// per batch.
#[derive(Debug, Default)]
pub struct LiveRoutes(std::sync::RwLock<std::sync::Arc<Routes>>);

impl LiveRoutes {
    pub fn new(routes: Routes) -> LiveRoutes {
        LiveRoutes(std::sync::RwLock::new(std::sync::Arc::new(routes)))
    }

    pub fn get(&self) -> std::sync::Arc<Routes> {
        match self.0.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn set(&self, routes: Routes) {
        match self.0.write() {
            Ok(mut w) => *w = std::sync::Arc::new(routes),
            Err(poisoned) => *poisoned.into_inner() = std::sync::Arc::new(routes),
        }
    }
}

/// The routes (swapped whole on reload).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routes {
    pub routes: Vec<Route>,
}

impl Routes {
    /// The targets of an event, each once, in the order found.
    pub fn targets(&self, s: &Subject<'_>) -> Vec<Target> {
        let mut out: Vec<Target> = Vec::new();
        let mut add = |t: Target| {
            if !out.contains(&t) {
                out.push(t);
            }
        };
        for r in &self.routes {
            if r.matches(s) {
                r.sinks.iter().cloned().for_each(&mut add);
                if !r.continue_matching {
                    break;
                }
            }
        }
        if !s.quiet {
            for t in s.named.iter().chain(s.notify) {
                if let Ok(t) = t.parse() {
                    add(t);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(f: impl FnOnce(&mut Route)) -> Route {
        let mut r = Route {
            services: vec![],
            priorities: vec![],
            events: vec![],
            matchers: vec![],
            sinks: vec![],
            continue_matching: false,
            quiet: false,
        };
        f(&mut r);
        r
    }

    fn sinks(names: &[&str]) -> Vec<Target> {
        names.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn first_match_wins_unless_it_continues() {
        let routes = Routes {
            routes: vec![
                route(|r| {
                    r.services = vec!["db".into()];
                    r.priorities = vec![Priority::P1, Priority::P2];
                    r.sinks = sinks(&["pager", "chat:#db"]);
                    r.continue_matching = true;
                }),
                route(|r| {
                    r.matchers = vec![Matcher::parse("team=~data|db").unwrap()];
                    r.events = vec![EventKind::Opened, EventKind::Resolved];
                    r.sinks = sinks(&["tickets"]);
                }),
                route(|r| r.sinks = sinks(&["catch-all"])),
            ],
        };
        let labels: BTreeMap<String, String> = [("team".to_string(), "db".to_string())].into();
        let none = BTreeMap::new();
        let at = |kind, service, priority, labels| Subject {
            kind,
            service,
            priority,
            labels,
            named: &[],
            notify: &[],
            quiet: false,
        };
        let names = |s: &Subject<'_>| {
            routes
                .targets(s)
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&at(
                EventKind::Opened,
                Some("db"),
                Some(Priority::P1),
                &labels
            )),
            ["pager", "chat:#db", "tickets"]
        );
        assert_eq!(
            names(&at(
                EventKind::Updated,
                Some("db"),
                Some(Priority::P1),
                &labels
            )),
            ["pager", "chat:#db", "catch-all"],
            "the second route takes opened and resolved only"
        );
        assert_eq!(
            names(&at(
                EventKind::Opened,
                Some("web"),
                Some(Priority::P1),
                &labels
            )),
            ["tickets"]
        );
        assert_eq!(
            names(&at(EventKind::Opened, None, Some(Priority::P3), &none)),
            ["catch-all"]
        );
    }

    #[test]
    fn named_and_notified_targets_join_and_quiet_events_stay_quiet() {
        let routes = Routes {
            routes: vec![
                route(|r| {
                    r.sinks = sinks(&["audit-hook"]);
                    r.quiet = true;
                    r.continue_matching = true;
                }),
                route(|r| r.sinks = sinks(&["chat"])),
            ],
        };
        let labels = BTreeMap::new();
        let named = ["chat".to_string(), "mail".to_string()];
        let notify = ["mail:lead@example.com".to_string()];
        let mut s = Subject {
            kind: EventKind::Escalated,
            service: None,
            priority: None,
            labels: &labels,
            named: &named,
            notify: &notify,
            quiet: false,
        };
        assert_eq!(
            routes.targets(&s),
            sinks(&["audit-hook", "chat", "mail", "mail:lead@example.com"])
        );
        s.quiet = true;
        assert_eq!(routes.targets(&s), sinks(&["audit-hook"]));
        assert!(Routes::default().targets(&s).is_empty());
    }
}
