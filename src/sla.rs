//! Service levels (ISO/IEC 20000-1 clause 8.3.3): the priority matrix, the respond-by
//! and resolve-by targets per priority, an incident's SLA clock with its on-hold
//! pauses and breaches, and the escalation levels an unacknowledged incident climbs.
//!
//! Pure: time is always an argument. The clock never reads the wall clock; the
//! correlation task asks it what is due at the batch's time.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::incidents::{Level, Priority};

/// Priority from impact (rows) × urgency (columns), each high, medium, low.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matrix(pub [[Priority; 3]; 3]);

fn rank(l: Level) -> usize {
    match l {
        Level::High => 0,
        Level::Medium => 1,
        Level::Low => 2,
    }
}

impl Default for Matrix {
    /// DESIGN.md's default: HH P1; HM, MH P2; HL, MM, LH P3; ML, LM P4; LL P5.
    fn default() -> Self {
        use Priority::*;
        Matrix([[P1, P2, P3], [P2, P3, P4], [P3, P4, P5]])
    }
}

impl Matrix {
    pub fn priority(&self, impact: Level, urgency: Level) -> Priority {
        self.0[rank(impact)][rank(urgency)]
    }
}

impl Priority {
    pub const ALL: [Priority; 5] = [
        Priority::P1,
        Priority::P2,
        Priority::P3,
        Priority::P4,
        Priority::P5,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
            Priority::P5 => "P5",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("expected one of P1, P2, P3, P4, P5, got {s:?}"))
    }
}

/// How soon an incident of one priority must be responded to (acknowledged) and
/// resolved, from when it opened, not counting time on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub respond_secs: u64,
    pub resolve_secs: u64,
}

/// Targets for P1 … P5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Targets(pub [Target; 5]);

impl Default for Targets {
    fn default() -> Self {
        const H: u64 = 3600;
        let t = |respond_secs, resolve_secs| Target {
            respond_secs,
            resolve_secs,
        };
        Targets([
            t(15 * 60, 4 * H),
            t(30 * 60, 8 * H),
            t(2 * H, 24 * H),
            t(8 * H, 72 * H),
            t(24 * H, 120 * H),
        ])
    }
}

impl Targets {
    pub fn of(&self, p: Priority) -> Target {
        self.0[p.index()]
    }
}

/// One step of the escalation policy: when an incident is still not acknowledged
/// `after_secs` past its respond-by time, it escalates to this level, whose `notify`
/// targets the sinks tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationLevel {
    pub after_secs: u64,
    pub notify: Vec<String>,
    /// Priorities this level applies to (empty: all).
    pub priorities: Vec<Priority>,
}

/// The escalation levels, in order (`after_secs` not decreasing).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Escalation {
    pub levels: Vec<EscalationLevel>,
    /// Whom an SLA breach is told (`[escalation] breach_notify`).
    pub breach_notify: Vec<String>,
}

fn secs(n: u64) -> SignedDuration {
    SignedDuration::from_secs(i64::try_from(n).unwrap_or(i64::MAX))
}

fn plus(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// An incident's service-level clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Respond (acknowledge) by, moved later by the time spent on hold.
    pub respond_by: Timestamp,
    /// Resolve by, moved later by the time spent on hold.
    pub resolve_by: Timestamp,
    /// Seconds spent on hold so far (the clocks' pauses), not counting a hold in
    /// progress.
    pub paused_secs: u64,
    /// Set when respond-by passed without a response.
    pub respond_breached_at: Option<Timestamp>,
    /// Set when resolve-by passed with the incident unresolved.
    pub resolve_breached_at: Option<Timestamp>,
    /// The escalation level reached (0: none).
    pub escalation_level: u32,
}

/// What [`Clock::due`] found at a time: breaches and escalations to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    RespondBreached { due: Timestamp },
    ResolveBreached { due: Timestamp },
    Escalated { level: u32, notify: Vec<String> },
}

/// Where the incident is, as far as its clock cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub priority: Priority,
    /// Acknowledged (or started) at least once: responded.
    pub responded: bool,
    /// Resolved, closed or cancelled: the resolve clock stopped.
    pub stopped: bool,
    pub on_hold: bool,
    /// Silenced or in a maintenance window: breaches are recorded, nobody is paged.
    pub quiet: bool,
}

impl Clock {
    /// The clock of an incident opened at `opened_at`.
    pub fn start(opened_at: Timestamp, target: Target) -> Clock {
        Clock {
            respond_by: plus(opened_at, secs(target.respond_secs)),
            resolve_by: plus(opened_at, secs(target.resolve_secs)),
            paused_secs: 0,
            respond_breached_at: None,
            resolve_breached_at: None,
            escalation_level: 0,
        }
    }

    /// New targets (the priority changed): deadlines from `opened_at` again, with the
    /// pauses so far. Breaches already recorded stay recorded.
    pub fn retarget(&mut self, opened_at: Timestamp, target: Target) {
        let paused = secs(self.paused_secs);
        self.respond_by = plus(plus(opened_at, secs(target.respond_secs)), paused);
        self.resolve_by = plus(plus(opened_at, secs(target.resolve_secs)), paused);
    }

    /// A hold from `since` ended at `now`: the deadlines move by its length.
    pub fn resume(&mut self, since: Timestamp, now: Timestamp) {
        let held = now.duration_since(since).max(SignedDuration::ZERO);
        self.paused_secs = self
            .paused_secs
            .saturating_add(u64::try_from(held.as_secs()).unwrap_or(0));
        self.respond_by = plus(self.respond_by, held);
        self.resolve_by = plus(self.resolve_by, held);
    }

    /// When the next event falls due (`None`: nothing can happen until the incident
    /// changes).
    pub fn next_due(&self, s: Standing, escalation: &Escalation) -> Option<Timestamp> {
        if s.on_hold || s.stopped {
            return None;
        }
        let mut next: Option<Timestamp> = None;
        let mut consider = |t: Timestamp| next = Some(next.map_or(t, |n| n.min(t)));
        if !s.responded {
            if self.respond_breached_at.is_none() {
                consider(self.respond_by);
            }
            if let Some((_, level)) = self.next_level(s.priority, escalation).filter(|_| !s.quiet) {
                consider(plus(self.respond_by, secs(level.after_secs)));
            }
        }
        if self.resolve_breached_at.is_none() {
            consider(self.resolve_by);
        }
        next
    }

    /// The next escalation level that applies to the priority, with its number.
    fn next_level<'a>(
        &self,
        priority: Priority,
        escalation: &'a Escalation,
    ) -> Option<(u32, &'a EscalationLevel)> {
        escalation
            .levels
            .iter()
            .enumerate()
            .skip(self.escalation_level as usize)
            .find(|(_, l)| l.priorities.is_empty() || l.priorities.contains(&priority))
            .map(|(i, l)| (i as u32 + 1, l))
    }

    /// Records what fell due by `now` and returns it (breaches first, then the
    /// escalation levels reached, one event per level).
    pub fn advance(&mut self, s: Standing, now: Timestamp, escalation: &Escalation) -> Vec<Event> {
        let mut events = Vec::new();
        if s.on_hold || s.stopped {
            return events;
        }
        if !s.responded && self.respond_breached_at.is_none() && now > self.respond_by {
            self.respond_breached_at = Some(now);
            events.push(Event::RespondBreached {
                due: self.respond_by,
            });
        }
        if self.resolve_breached_at.is_none() && now > self.resolve_by {
            self.resolve_breached_at = Some(now);
            events.push(Event::ResolveBreached {
                due: self.resolve_by,
            });
        }
        if !s.responded && !s.quiet {
            while let Some((n, level)) = self.next_level(s.priority, escalation) {
                if now < plus(self.respond_by, secs(level.after_secs)) {
                    break;
                }
                self.escalation_level = n;
                events.push(Event::Escalated {
                    level: n,
                    notify: level.notify.clone(),
                });
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    const TARGET: Target = Target {
        respond_secs: 100,
        resolve_secs: 1000,
    };

    fn standing() -> Standing {
        Standing {
            priority: Priority::P3,
            responded: false,
            stopped: false,
            on_hold: false,
            quiet: false,
        }
    }

    fn levels() -> Escalation {
        Escalation {
            levels: vec![
                EscalationLevel {
                    after_secs: 0,
                    notify: vec!["lead".into()],
                    priorities: vec![],
                },
                EscalationLevel {
                    after_secs: 50,
                    notify: vec!["p1-only".into()],
                    priorities: vec![Priority::P1],
                },
                EscalationLevel {
                    after_secs: 200,
                    notify: vec!["manager".into()],
                    priorities: vec![],
                },
            ],
            breach_notify: vec![],
        }
    }

    #[test]
    fn the_matrix_is_designs_default_and_reads_impact_by_urgency() {
        use Level::*;
        let m = Matrix::default();
        let cases = [
            (High, High, Priority::P1),
            (High, Medium, Priority::P2),
            (Medium, High, Priority::P2),
            (High, Low, Priority::P3),
            (Medium, Medium, Priority::P3),
            (Low, High, Priority::P3),
            (Medium, Low, Priority::P4),
            (Low, Medium, Priority::P4),
            (Low, Low, Priority::P5),
        ];
        for (i, u, want) in cases {
            assert_eq!(m.priority(i, u), want, "{i:?} x {u:?}");
        }
        let mut custom = Matrix::default();
        custom.0[0][2] = Priority::P1;
        assert_eq!(custom.priority(High, Low), Priority::P1);
        assert_eq!(custom.priority(Low, High), Priority::P3);
    }

    #[test]
    fn deadlines_start_at_open_and_breach_only_after_they_pass() {
        let mut c = Clock::start(t(0), TARGET);
        assert_eq!((c.respond_by, c.resolve_by), (t(100), t(1000)));
        let none = Escalation::default();
        assert_eq!(c.next_due(standing(), &none), Some(t(100)));
        assert!(
            c.advance(standing(), t(100), &none).is_empty(),
            "due, not past"
        );
        assert_eq!(
            c.advance(standing(), t(101), &none),
            [Event::RespondBreached { due: t(100) }]
        );
        assert!(
            c.advance(standing(), t(102), &none).is_empty(),
            "recorded once"
        );
        assert_eq!(c.next_due(standing(), &none), Some(t(1000)));
        let responded = Standing {
            responded: true,
            ..standing()
        };
        assert_eq!(
            c.advance(responded, t(1001), &none),
            [Event::ResolveBreached { due: t(1000) }]
        );
        assert_eq!(c.next_due(responded, &none), None);
    }

    #[test]
    fn a_response_in_time_means_no_respond_breach() {
        let mut c = Clock::start(t(0), TARGET);
        let responded = Standing {
            responded: true,
            ..standing()
        };
        assert!(c.advance(responded, t(500), &levels()).is_empty());
        assert_eq!(c.respond_breached_at, None);
        assert_eq!(c.escalation_level, 0);
        assert_eq!(c.next_due(responded, &levels()), Some(t(1000)));
    }

    #[test]
    fn holds_pause_both_clocks() {
        let mut c = Clock::start(t(0), TARGET);
        let held = Standing {
            on_hold: true,
            ..standing()
        };
        // On hold from 50 to 250: nothing is due, nothing breaches.
        assert_eq!(c.next_due(held, &levels()), None);
        assert!(c.advance(held, t(240), &levels()).is_empty());
        c.resume(t(50), t(250));
        assert_eq!(c.paused_secs, 200);
        assert_eq!((c.respond_by, c.resolve_by), (t(300), t(1200)));
        // A second hold adds up.
        c.resume(t(400), t(410));
        assert_eq!(c.paused_secs, 210);
        assert_eq!(c.resolve_by, t(1210));
        // The priority changes: targets from opening again, pauses kept.
        c.retarget(
            t(0),
            Target {
                respond_secs: 10,
                resolve_secs: 20,
            },
        );
        assert_eq!((c.respond_by, c.resolve_by), (t(220), t(230)));
    }

    #[test]
    fn unacknowledged_incidents_climb_the_levels_that_apply_to_their_priority() {
        let mut c = Clock::start(t(0), TARGET);
        let esc = levels();
        assert_eq!(c.next_due(standing(), &esc), Some(t(100)));
        let events = c.advance(standing(), t(101), &esc);
        assert_eq!(
            events,
            [
                Event::RespondBreached { due: t(100) },
                Event::Escalated {
                    level: 1,
                    notify: vec!["lead".into()]
                }
            ]
        );
        // Level 2 is for P1 only: a P3 goes to level 3 at respond-by + 200.
        assert_eq!(c.next_due(standing(), &esc), Some(t(300)));
        assert!(c.advance(standing(), t(299), &esc).is_empty());
        assert_eq!(
            c.advance(standing(), t(300), &esc),
            [Event::Escalated {
                level: 3,
                notify: vec!["manager".into()]
            }]
        );
        assert_eq!(c.escalation_level, 3);
        assert_eq!(c.next_due(standing(), &esc), Some(t(1000)));

        // A P1 goes through level 2; several levels due at once all fire in order.
        let mut c = Clock::start(t(0), TARGET);
        let p1 = Standing {
            priority: Priority::P1,
            ..standing()
        };
        let levels: Vec<u32> = c
            .advance(p1, t(400), &esc)
            .into_iter()
            .filter_map(|e| match e {
                Event::Escalated { level, .. } => Some(level),
                _ => None,
            })
            .collect();
        assert_eq!(levels, [1, 2, 3]);
    }

    #[test]
    fn quiet_incidents_breach_but_do_not_escalate() {
        let mut c = Clock::start(t(0), TARGET);
        let quiet = Standing {
            quiet: true,
            ..standing()
        };
        assert_eq!(
            c.advance(quiet, t(500), &levels()),
            [Event::RespondBreached { due: t(100) }]
        );
        assert_eq!(c.escalation_level, 0);
        assert_eq!(c.next_due(quiet, &levels()), Some(t(1000)));
        // Paging again: the levels due since are reached.
        assert_eq!(c.advance(standing(), t(501), &levels()).len(), 2);
    }

    #[test]
    fn acknowledging_stops_escalation() {
        let mut c = Clock::start(t(0), TARGET);
        let esc = levels();
        c.advance(standing(), t(101), &esc);
        assert_eq!(c.escalation_level, 1);
        let responded = Standing {
            responded: true,
            ..standing()
        };
        assert!(c.advance(responded, t(900), &esc).is_empty());
        assert_eq!(c.escalation_level, 1);
    }

    #[test]
    fn priorities_parse_and_print() {
        assert_eq!("p2".parse::<Priority>(), Ok(Priority::P2));
        assert_eq!(Priority::P5.as_str(), "P5");
        assert!("P6".parse::<Priority>().is_err());
    }
}
