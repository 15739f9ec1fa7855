//! The nightly job's step rules, pure: given what the plan asks for and how
//! the earlier steps ended, does a step run, and if not, why.
//!
//! ```text
//! backup -> verify -> ship -> prune-remote
//!              \-> prune (local; also runs when backup itself failed)
//! cleanup (independent)
//! ```
//!
//! Local prune waits for verify because a new set that does not verify must
//! not count as the newest good one when older sets are removed.

use std::fmt;

use crate::settings::CleanupMode;

/// A step of the nightly job, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Dump the database into a new set.
    Backup,
    /// Check every file of the new set.
    Verify,
    /// Copy the set to `[backup] ship_to` and verify the copy.
    Ship,
    /// Apply the retention policy to the local destination.
    Prune,
    /// Apply the retention policy to the ship target.
    PruneRemote,
    /// `cleanup scan` or `cleanup apply`.
    Cleanup,
}

impl Step {
    /// Every step, in order.
    pub const ALL: [Step; 6] = [
        Step::Backup,
        Step::Verify,
        Step::Ship,
        Step::Prune,
        Step::PruneRemote,
        Step::Cleanup,
    ];

    /// The name in the summary: `backup`, ..., `prune-remote`, `cleanup`.
    pub fn name(self) -> &'static str {
        match self {
            Step::Backup => "backup",
            Step::Verify => "verify",
            Step::Ship => "ship",
            Step::Prune => "prune",
            Step::PruneRemote => "prune-remote",
            Step::Cleanup => "cleanup",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StepStatus {
    /// Did its job.
    Ok,
    /// Did its job, with something to look at (informational: cleanup
    /// found files to quarantine, a set could not be pruned).
    Warning,
    /// Did its job, but found what needs attention: possible data loss
    /// (dangling references), a set that is not what was asked for.
    Attention,
    /// Could not do its job.
    Failed,
    /// Did not run.
    Skipped,
}

impl StepStatus {
    /// `ok`, `warning`, `attention`, `failed`, `skipped`.
    pub fn name(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Warning => "warning",
            StepStatus::Attention => "attention",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }

    /// Ok, Warning or Attention: the step did its job.
    pub fn succeeded(self) -> bool {
        matches!(
            self,
            StepStatus::Ok | StepStatus::Warning | StepStatus::Attention
        )
    }
}

/// What the plan asks for, as far as the step rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// `[backup] ship_to` is set.
    pub ship_to: bool,
    /// This run does not ship (`nightly --no-ship`).
    pub no_ship: bool,
    /// A retention policy is set (`[backup] keep_*`).
    pub policy: bool,
    /// `[nightly] prune_remote`.
    pub prune_remote: bool,
    /// `[nightly] cleanup`.
    pub cleanup: CleanupMode,
}

/// How the steps so far ended (`None`: not run yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes([Option<StepStatus>; 6]);

impl Outcomes {
    /// Records how `step` ended.
    pub fn set(&mut self, step: Step, status: StepStatus) {
        self.0[step.index()] = Some(status);
    }

    /// How `step` ended.
    pub fn get(&self, step: Step) -> Option<StepStatus> {
        self.0[step.index()]
    }

    fn succeeded(&self, step: Step) -> bool {
        self.get(step).is_some_and(StepStatus::succeeded)
    }
}

/// Why a step does not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The backup failed: there is no set to verify or ship.
    NoSet,
    /// No `[backup] ship_to`.
    NoShipTarget,
    /// Shipping was switched off for this run.
    NoShipRequested,
    /// The new set did not verify, so it is not shipped.
    NotVerifiedNoShip,
    /// The new set did not verify, so older sets are all kept.
    NotVerifiedNoPrune,
    /// No retention policy: local prune warns (sets accumulate).
    NoPolicy,
    /// No retention policy: remote prune is skipped.
    NoPolicyRemote,
    /// `[nightly] prune_remote = false`.
    PruneRemoteOff,
    /// Ship did not succeed, so the target is left as it is.
    NotShipped,
    /// `[nightly] cleanup = "off"`.
    CleanupOff,
}

impl SkipReason {
    /// The status a step skipped for this reason gets: a warning when
    /// skipping it is itself a problem (no retention policy at all).
    pub fn status(self) -> StepStatus {
        match self {
            SkipReason::NoPolicy => StepStatus::Warning,
            _ => StepStatus::Skipped,
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipReason::NoSet => "no set: backup failed",
            SkipReason::NoShipTarget => "no [backup] ship_to",
            SkipReason::NoShipRequested => "shipping switched off for this run",
            SkipReason::NotVerifiedNoShip => "the set did not verify; it is not shipped",
            SkipReason::NotVerifiedNoPrune => "the new set did not verify; older sets are all kept",
            SkipReason::NoPolicy => "no retention policy ([backup] keep_*): sets accumulate",
            SkipReason::NoPolicyRemote => "no retention policy ([backup] keep_*)",
            SkipReason::PruneRemoteOff => "[nightly] prune_remote = false",
            SkipReason::NotShipped => "ship did not succeed; the target is left as it is",
            SkipReason::CleanupOff => "[nightly] cleanup = \"off\"",
        })
    }
}

/// Whether a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Run,
    /// Do not run it, for this reason.
    Skip(SkipReason),
}

/// The rule for `step`, given the plan's shape and the earlier steps' outcomes.
pub fn next(step: Step, shape: &Shape, done: &Outcomes) -> Decision {
    use Decision::{Run, Skip};
    let set = done.succeeded(Step::Backup);
    // Attention from verify: every checksum good, but the restore drill
    // could not run (its scratch schemas were in the way): still shipped.
    let verified = matches!(
        done.get(Step::Verify),
        Some(StepStatus::Ok | StepStatus::Attention)
    );
    match step {
        Step::Backup => Run,
        Step::Verify if !set => Skip(SkipReason::NoSet),
        Step::Verify => Run,
        Step::Ship if !shape.ship_to => Skip(SkipReason::NoShipTarget),
        Step::Ship if shape.no_ship => Skip(SkipReason::NoShipRequested),
        Step::Ship if !set => Skip(SkipReason::NoSet),
        Step::Ship if !verified => Skip(SkipReason::NotVerifiedNoShip),
        Step::Ship => Run,
        Step::Prune if !shape.policy => Skip(SkipReason::NoPolicy),
        // A failed backup left no new set: older sets are pruned as usual.
        Step::Prune if set && !verified => Skip(SkipReason::NotVerifiedNoPrune),
        Step::Prune => Run,
        Step::PruneRemote if !shape.ship_to => Skip(SkipReason::NoShipTarget),
        Step::PruneRemote if !shape.prune_remote => Skip(SkipReason::PruneRemoteOff),
        Step::PruneRemote if !shape.policy => Skip(SkipReason::NoPolicyRemote),
        Step::PruneRemote if !done.succeeded(Step::Ship) => Skip(SkipReason::NotShipped),
        Step::PruneRemote => Run,
        Step::Cleanup if shape.cleanup == CleanupMode::Off => Skip(SkipReason::CleanupOff),
        Step::Cleanup => Run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus::{Attention, Failed, Ok, Skipped, Warning};

    const FULL: Shape = Shape {
        ship_to: true,
        no_ship: false,
        policy: true,
        prune_remote: true,
        cleanup: CleanupMode::Scan,
    };

    fn outcomes(list: &[(Step, StepStatus)]) -> Outcomes {
        let mut o = Outcomes::default();
        for &(s, st) in list {
            o.set(s, st);
        }
        o
    }

    /// A step, the plan's shape, the outcomes before it, the decision.
    type Case = (Step, Shape, &'static [(Step, StepStatus)], Decision);

    /// Runs the whole schedule with each step that runs ending as `ends`
    /// says (Ok when not listed); returns what each step became.
    fn simulate(
        shape: Shape,
        ends: &[(Step, StepStatus)],
    ) -> Vec<(Step, Result<StepStatus, SkipReason>)> {
        let mut done = Outcomes::default();
        Step::ALL
            .into_iter()
            .map(|step| {
                let r = match next(step, &shape, &done) {
                    Decision::Run => {
                        let st = ends
                            .iter()
                            .find(|(s, _)| *s == step)
                            .map_or(Ok, |(_, st)| *st);
                        done.set(step, st);
                        Result::Ok(st)
                    }
                    Decision::Skip(why) => {
                        done.set(step, why.status());
                        Err(why)
                    }
                };
                (step, r)
            })
            .collect()
    }

    #[test]
    fn each_rule() {
        use Decision::{Run, Skip};
        use SkipReason as R;
        let no = |f: fn(&mut Shape)| {
            let mut s = FULL;
            f(&mut s);
            s
        };
        let cases: &[Case] = &[
            (Step::Backup, FULL, &[], Run),
            (Step::Verify, FULL, &[(Step::Backup, Ok)], Run),
            (Step::Verify, FULL, &[(Step::Backup, Warning)], Run),
            (
                Step::Verify,
                FULL,
                &[(Step::Backup, Failed)],
                Skip(R::NoSet),
            ),
            (
                Step::Ship,
                no(|s| s.ship_to = false),
                &[(Step::Backup, Ok), (Step::Verify, Ok)],
                Skip(R::NoShipTarget),
            ),
            (
                Step::Ship,
                no(|s| s.no_ship = true),
                &[(Step::Backup, Ok), (Step::Verify, Ok)],
                Skip(R::NoShipRequested),
            ),
            (
                Step::Ship,
                FULL,
                &[(Step::Backup, Failed), (Step::Verify, Skipped)],
                Skip(R::NoSet),
            ),
            (
                Step::Ship,
                FULL,
                &[(Step::Backup, Ok), (Step::Verify, Failed)],
                Skip(R::NotVerifiedNoShip),
            ),
            (
                Step::Ship,
                FULL,
                &[(Step::Backup, Warning), (Step::Verify, Ok)],
                Run,
            ),
            // Checksums good, the drill blocked by schemas not its own.
            (
                Step::Ship,
                FULL,
                &[(Step::Backup, Ok), (Step::Verify, Attention)],
                Run,
            ),
            (
                Step::Prune,
                FULL,
                &[(Step::Backup, Ok), (Step::Verify, Attention)],
                Run,
            ),
            (
                Step::Prune,
                no(|s| s.policy = false),
                &[(Step::Backup, Ok), (Step::Verify, Ok)],
                Skip(R::NoPolicy),
            ),
            (
                Step::Prune,
                FULL,
                &[(Step::Backup, Ok), (Step::Verify, Failed)],
                Skip(R::NotVerifiedNoPrune),
            ),
            (
                Step::Prune,
                FULL,
                &[(Step::Backup, Failed), (Step::Verify, Skipped)],
                Run,
            ),
            (
                Step::Prune,
                FULL,
                &[(Step::Backup, Ok), (Step::Verify, Ok), (Step::Ship, Failed)],
                Run,
            ),
            (
                Step::PruneRemote,
                no(|s| s.ship_to = false),
                &[(Step::Ship, Skipped)],
                Skip(R::NoShipTarget),
            ),
            (
                Step::PruneRemote,
                no(|s| s.prune_remote = false),
                &[(Step::Ship, Ok)],
                Skip(R::PruneRemoteOff),
            ),
            (
                Step::PruneRemote,
                no(|s| s.policy = false),
                &[(Step::Ship, Ok)],
                Skip(R::NoPolicyRemote),
            ),
            (
                Step::PruneRemote,
                FULL,
                &[(Step::Ship, Failed)],
                Skip(R::NotShipped),
            ),
            (
                Step::PruneRemote,
                FULL,
                &[(Step::Ship, Skipped)],
                Skip(R::NotShipped),
            ),
            // Removing the local copy after shipping failed: the copy is there.
            (Step::PruneRemote, FULL, &[(Step::Ship, Warning)], Run),
            (
                Step::Cleanup,
                no(|s| s.cleanup = CleanupMode::Off),
                &[],
                Skip(R::CleanupOff),
            ),
            (Step::Cleanup, FULL, &[(Step::Backup, Failed)], Run),
            (
                Step::Cleanup,
                no(|s| s.cleanup = CleanupMode::Apply),
                &[],
                Run,
            ),
        ];
        for (step, shape, before, want) in cases {
            assert_eq!(
                next(*step, shape, &outcomes(before)),
                *want,
                "{step} with {shape:?} after {before:?}"
            );
        }
    }

    #[test]
    fn a_failure_skips_only_its_dependents() {
        let r = simulate(FULL, &[(Step::Ship, Failed)]);
        assert_eq!(
            r,
            [
                (Step::Backup, Result::Ok(Ok)),
                (Step::Verify, Result::Ok(Ok)),
                (Step::Ship, Result::Ok(Failed)),
                (Step::Prune, Result::Ok(Ok)),
                (Step::PruneRemote, Err(SkipReason::NotShipped)),
                (Step::Cleanup, Result::Ok(Ok)),
            ]
        );
        let r = simulate(FULL, &[(Step::Backup, Failed)]);
        assert_eq!(
            r.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
            [
                Result::Ok(Failed),
                Err(SkipReason::NoSet),
                Err(SkipReason::NoSet),
                Result::Ok(Ok),
                Err(SkipReason::NotShipped),
                Result::Ok(Ok),
            ]
        );
        let r = simulate(FULL, &[(Step::Verify, Failed)]);
        assert_eq!(
            r.iter().map(|(_, r)| *r).collect::<Vec<_>>(),
            [
                Result::Ok(Ok),
                Result::Ok(Failed),
                Err(SkipReason::NotVerifiedNoShip),
                Err(SkipReason::NotVerifiedNoPrune),
                Err(SkipReason::NotShipped),
                Result::Ok(Ok),
            ]
        );
    }

    #[test]
    fn no_policy_is_a_warning_not_a_skip() {
        assert_eq!(SkipReason::NoPolicy.status(), Warning);
        assert_eq!(SkipReason::NoPolicyRemote.status(), Skipped);
        assert_eq!(
            SkipReason::NoPolicy.to_string(),
            "no retention policy ([backup] keep_*): sets accumulate"
        );
    }
}
