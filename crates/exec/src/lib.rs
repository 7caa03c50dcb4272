//! The executor of kastellan's mutating commands.
//!
//! k0sctl is the model: facts first, then a plan, and every mutation goes through one
//! gate that either describes it (dry run) or performs it. Here the gate is the
//! [`Action`] trait: one type holds both the description and the mutation, so what
//! `--dry-run` prints is what runs, and nothing is worked out again at apply time.
//!
//! - A [`Plan`] is a list of typed [`Step`]s, each on a node, in a phase, with an
//!   optional clean-up (`undo`) and a `commit` mark (the point of no return). It is
//!   serialisable both ways and records the facts it was built from, so a saved plan
//!   can be applied later once [`Plan::check_facts`] finds the node unchanged.
//! - A [`Run`] is a state machine that moves by value: [`Run::step`] performs the next
//!   step and returns the run or, after the last one only, a [`Finished`] run. Before
//!   and after every step the [`Journal`] is written atomically, so a run killed at any
//!   point resumes ([`Run::resume`]) at the step it was on and never repeats one that
//!   completed (actions are written so that performing one again after a crash in its
//!   middle is safe).
//! - When a step fails, the clean-ups of the steps done before it run in reverse order,
//!   back to the last `commit` step: a failure before the point of no return puts the
//!   node back as it was ([`Failure::rolled_back`]) and the journal is removed; after
//!   it, the journal stays and the run resumes at the failed step.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One kind of change a plan can make. The same value describes itself for the dry run
/// and performs itself for the run.
pub trait Action: Serialize + DeserializeOwned + Clone + Debug + PartialEq {
    /// What performing an action needs (probes, timeouts).
    type Context: ?Sized;
    /// Why an action failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// What it does, exactly, with every path and value: one line per change.
    fn describe(&self) -> String;
    /// Performs it. Performing it again after a crash in its middle must be safe.
    fn apply(&self, ctx: &Self::Context) -> Result<(), Self::Error>;
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Step<A> {
    /// The node it runs on.
    pub node: String,
    /// The phase it belongs to (steps of one phase are consecutive).
    pub phase: String,
    /// What it does.
    pub action: A,
    /// What undoes it when a later step fails (before a `commit` step).
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    pub undo: Option<A>,
    /// The point of no return: once done, the steps before it are not undone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub commit: bool,
}

impl<A> Step<A> {
    /// A step without clean-up.
    pub fn new(node: &str, phase: &str, action: A) -> Step<A> {
        Step {
            node: node.to_string(),
            phase: phase.to_string(),
            action,
            undo: None,
            commit: false,
        }
    }

    /// With a clean-up.
    pub fn undo(mut self, undo: A) -> Step<A> {
        self.undo = Some(undo);
        self
    }

    /// Marked as the point of no return.
    pub fn commit(mut self) -> Step<A> {
        self.commit = true;
        self
    }
}

/// A plan: what it was built from, and its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan<A, F> {
    /// What sort of plan (`restore`, `certs-renew`): a saved plan of another sort is
    /// refused.
    pub kind: String,
    /// The run's id.
    pub id: String,
    /// The facts the plan was built from.
    pub facts: F,
    /// The steps, in the only order they run.
    pub steps: Vec<Step<A>>,
}

/// A step as the dry run shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Described {
    /// Its index (from 1).
    pub step: usize,
    /// Its node.
    pub node: String,
    /// Its phase.
    pub phase: String,
    /// What it does.
    pub does: String,
    /// What undoes it on a later failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
    /// Whether it is the point of no return.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub commit: bool,
}

impl<A: Action, F: Serialize + DeserializeOwned + Clone + Debug + PartialEq> Plan<A, F> {
    /// Every step, described by the action that will run.
    pub fn describe(&self) -> Vec<Described> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| Described {
                step: i + 1,
                node: s.node.clone(),
                phase: s.phase.clone(),
                does: s.action.describe(),
                undo: s.undo.as_ref().map(Action::describe),
                commit: s.commit,
            })
            .collect()
    }

    /// The phases, in order, each once.
    pub fn phases(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        for s in &self.steps {
            if v.last() != Some(&s.phase.as_str()) {
                v.push(&s.phase);
            }
        }
        v
    }

    /// Checks a saved plan against the facts as they are now: refused with every
    /// difference named when they changed since the plan was made.
    pub fn check_facts(&self, now: &F) -> Result<(), Error> {
        if &self.facts == now {
            return Ok(());
        }
        let (a, b) = (to_value(&self.facts)?, to_value(now)?);
        let mut differences = Vec::new();
        diff("", &a, &b, &mut differences);
        if differences.is_empty() {
            return Ok(());
        }
        Err(Error::FactsChanged {
            id: self.id.clone(),
            differences,
        })
    }

    /// Reads a saved plan (JSON or YAML is the caller's business: this takes JSON) and
    /// checks its kind.
    pub fn from_json(kind: &str, path: &Path, bytes: &[u8]) -> Result<Plan<A, F>, Error> {
        let plan: Plan<A, F> = serde_json::from_slice(bytes).map_err(|e| Error::BadFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        if plan.kind != kind {
            return Err(Error::BadFile {
                path: path.to_path_buf(),
                detail: format!("a plan of kind {:?}, not {kind:?}", plan.kind),
            });
        }
        Ok(plan)
    }
}

fn to_value<T: Serialize>(v: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::Encode(e.to_string()))
}

fn short(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        format!("{}...", s.chars().take(57).collect::<String>())
    } else {
        s
    }
}

/// The differences between two JSON values, as `path: was X, now Y`.
fn diff(at: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff(&p, u, v, out),
                    (Some(u), None) => out.push(format!("{p}: was {}, now absent", short(u))),
                    (None, Some(v)) => out.push(format!("{p}: was absent, now {}", short(v))),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff(&format!("{at}[{i}]"), u, v, out);
            }
        }
        (u, v) if u != v => out.push(format!("{at}: was {}, now {}", short(u), short(v))),
        _ => {}
    }
}

/// What happened to a step, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// It started.
    Started,
    /// It completed.
    Done,
    /// It failed.
    Failed,
    /// Its clean-up ran after a later step failed.
    Undone,
}

/// One line of the journal's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The step's index (from 1).
    pub step: usize,
    /// What happened.
    pub event: Event,
    /// When (seconds since the Unix epoch).
    pub at: u64,
    /// The error, for a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The journal file: the plan, how many steps are done, and what happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal<A, F> {
    /// The plan being applied.
    pub plan: Plan<A, F>,
    /// How many steps are done (the next one to run is `steps[done]`).
    pub done: usize,
    /// Every start, completion, failure and clean-up, in order.
    pub log: Vec<Entry>,
}

impl<A: Action, F: Serialize + DeserializeOwned + Clone + Debug + PartialEq> Journal<A, F> {
    /// Reads a journal (`None`: there is none).
    pub fn load(path: &Path) -> Result<Option<Journal<A, F>>, Error> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::BadFile {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Fs(kastellan_fs::Error::Io {
                op: "reading",
                path: path.to_path_buf(),
                source,
            })),
        }
    }

    /// The next step, if any.
    pub fn next(&self) -> Option<&Step<A>> {
        self.plan.steps.get(self.done)
    }

    /// The phases done entirely.
    pub fn phases_done(&self) -> Vec<&str> {
        let done = &self.plan.steps[..self.done.min(self.plan.steps.len())];
        self.plan
            .phases()
            .into_iter()
            .filter(|p| {
                done.iter().any(|s| s.phase == *p)
                    && !self.plan.steps[done.len()..].iter().any(|s| s.phase == *p)
            })
            .collect()
    }

    fn save(&self, path: &Path) -> Result<(), Error> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(kastellan_fs::write_atomic(path, &json, 0o600)?)
    }

    fn record(&mut self, step: usize, event: Event, error: Option<String>) {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.log.push(Entry {
            step: step + 1,
            event,
            at,
            error,
        });
    }
}

/// The executor's errors. Library errors name files, never CLI flags.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A journal exists: a run is under way or was interrupted.
    #[error("{}: run {id} is in progress at step {next} of {total}", path.display())]
    InProgress {
        /// The journal.
        path: PathBuf,
        /// Its run.
        id: String,
        /// The next step (from 1).
        next: usize,
        /// How many steps.
        total: usize,
    },
    /// Another process holds the run's lock.
    #[error("another process is applying this plan (it holds {})", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// No journal to resume.
    #[error("nothing to resume: {} does not exist", path.display())]
    NothingToResume {
        /// The journal path.
        path: PathBuf,
    },
    /// A plan or journal file does not parse, or is of another kind.
    #[error("{}: {detail}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The facts changed since the plan was made.
    #[error("the node changed since plan {id} was made: {}", differences.join("; "))]
    FactsChanged {
        /// The plan's id.
        id: String,
        /// What changed.
        differences: Vec<String>,
    },
    /// A value could not be encoded.
    #[error("encoding: {0}")]
    Encode(String),
    /// A durable write failed.
    #[error(transparent)]
    Fs(#[from] kastellan_fs::Error),
}

/// A run of a plan: the journal, its file and its lock. Only [`Run::step`] changes
/// anything, and only the next step.
#[derive(Debug)]
pub struct Run<A, F> {
    journal: Journal<A, F>,
    path: PathBuf,
    _lock: std::fs::File,
}

/// Where a run is after a step.
#[derive(Debug)]
pub enum Progress<A, F> {
    /// More steps to run.
    Running(Run<A, F>),
    /// Every step ran.
    Finished(Finished<A, F>),
}

/// A run whose every step completed: the only way to close its journal.
#[derive(Debug)]
pub struct Finished<A, F> {
    journal: Journal<A, F>,
    path: PathBuf,
}

impl<A: Action, F: Serialize + DeserializeOwned + Clone + Debug + PartialEq> Finished<A, F> {
    /// The journal.
    pub fn journal(&self) -> &Journal<A, F> {
        &self.journal
    }

    /// Moves the journal to `archive` (so that a new run may start) and returns it.
    pub fn close(self, archive: &Path) -> Result<Journal<A, F>, Error> {
        move_journal(&self.path, archive)?;
        Ok(self.journal)
    }
}

/// Moves a journal out of the way, durably.
fn move_journal(path: &Path, archive: &Path) -> Result<(), Error> {
    if let Some(dir) = archive.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(kastellan_fs::Error::io("creating", dir))
            .map_err(Error::Fs)?;
    }
    std::fs::rename(path, archive)
        .map_err(kastellan_fs::Error::io("moving the journal to", archive))?;
    kastellan_fs::sync_parent(archive)?;
    Ok(())
}

/// A step that failed, and what the clean-up did.
#[derive(Debug)]
pub struct Failure<A, F> {
    /// The failed step (from 1).
    pub step: usize,
    /// Its node.
    pub node: String,
    /// Its phase.
    pub phase: String,
    /// Why it failed.
    pub error: StepError,
    /// The steps undone (from 1), in the order their clean-ups ran.
    pub undone: Vec<usize>,
    /// Clean-ups that failed themselves, with why.
    pub undo_errors: Vec<(usize, String)>,
    /// Whether the node is back as it was before the run (no commit step was done and
    /// every clean-up succeeded); the journal was removed then.
    pub rolled_back: bool,
    /// The journal as it stands (to resume from when not rolled back).
    pub journal: Journal<A, F>,
}

/// How the executor stops a debug build for crash tests: with
/// `KASTELLAN_EXEC_PAUSE_AFTER=<phase>` (or `<step number>`) it logs a warning (through
/// `tracing`, which the binary writes to stderr) and waits forever right
/// after the journal records that step (or the last step of that phase) done, so that
/// a test can kill it with SIGKILL at an exact boundary.
pub const PAUSE_ENV: &str = "KASTELLAN_EXEC_PAUSE_AFTER";

impl<A: Action, F: Serialize + DeserializeOwned + Clone + Debug + PartialEq> Run<A, F> {
    fn lock(path: &Path) -> Result<std::fs::File, Error> {
        let lock = path.with_extension("lock");
        let dir = kastellan_fs::parent_dir(&lock);
        std::fs::create_dir_all(dir).map_err(kastellan_fs::Error::io("creating", dir))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock)
            .map_err(kastellan_fs::Error::io("opening", &lock))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path: lock }),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(kastellan_fs::Error::io("locking", &lock)(e).into())
            }
        }
    }

    /// Refuses while a journal exists at `path` (a run under way or interrupted).
    pub fn refuse_in_progress(path: &Path) -> Result<(), Error> {
        if let Some(j) = Journal::<A, F>::load(path)? {
            return Err(Error::InProgress {
                path: path.to_path_buf(),
                id: j.plan.id.clone(),
                next: j.done + 1,
                total: j.plan.steps.len(),
            });
        }
        Ok(())
    }

    /// Starts a new run of `plan`, journalled at `path`: refused while another journal
    /// is there or another process holds the lock.
    pub fn start(plan: Plan<A, F>, path: &Path) -> Result<Run<A, F>, Error> {
        let lock = Run::<A, F>::lock(path)?;
        Run::<A, F>::refuse_in_progress(path)?;
        let journal = Journal {
            plan,
            done: 0,
            log: Vec::new(),
        };
        journal.save(path)?;
        Ok(Run {
            journal,
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Resumes the run journalled at `path`, at the step it was on.
    pub fn resume(path: &Path) -> Result<Run<A, F>, Error> {
        let lock = Run::<A, F>::lock(path)?;
        let journal = Journal::load(path)?.ok_or_else(|| Error::NothingToResume {
            path: path.to_path_buf(),
        })?;
        Ok(Run {
            journal,
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The journal.
    pub fn journal(&self) -> &Journal<A, F> {
        &self.journal
    }

    /// Gives the run up where it stands: its journal moves to `archive` (so that a new
    /// run may start) with nothing performed or undone; the operator has said that
    /// they take over from here.
    pub fn abandon(self, archive: &Path) -> Result<Journal<A, F>, Error> {
        move_journal(&self.path, archive)?;
        Ok(self.journal)
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next step, if any.
    pub fn next(&self) -> Option<&Step<A>> {
        self.journal.next()
    }

    /// Performs the next step and records it. A run with no step left finishes.
    pub fn step(mut self, ctx: &A::Context) -> Result<Progress<A, F>, Box<Failure<A, F>>> {
        let i = self.journal.done;
        let Some(step) = self.journal.plan.steps.get(i).cloned() else {
            return Ok(Progress::Finished(Finished {
                journal: self.journal,
                path: self.path,
            }));
        };
        self.journal.record(i, Event::Started, None);
        if let Err(e) = self.journal.save(&self.path) {
            return Err(self.fail(i, &step, StepError::Journal(e), ctx));
        }
        if let Err(e) = step.action.apply(ctx) {
            return Err(self.fail(i, &step, StepError::Action(Box::new(e)), ctx));
        }
        self.journal.done = i + 1;
        self.journal.record(i, Event::Done, None);
        if let Err(e) = self.journal.save(&self.path) {
            // The step ran but is not recorded: a resume runs it again, which actions
            // allow. Nothing is undone: the journal on disk says where the run is.
            return Err(Box::new(Failure {
                step: i + 1,
                node: step.node.clone(),
                phase: step.phase.clone(),
                error: StepError::Journal(e),
                undone: Vec::new(),
                undo_errors: Vec::new(),
                rolled_back: false,
                journal: self.journal,
            }));
        }
        pause_point(&step.phase, i + 1, &self.journal.plan);
        if self.journal.done == self.journal.plan.steps.len() {
            Ok(Progress::Finished(Finished {
                journal: self.journal,
                path: self.path,
            }))
        } else {
            Ok(Progress::Running(self))
        }
    }

    /// Runs every step left, calling `before` with each step before it runs.
    pub fn run_all(
        self,
        ctx: &A::Context,
        mut before: impl FnMut(usize, &Step<A>),
    ) -> Result<Finished<A, F>, Box<Failure<A, F>>> {
        let mut run = self;
        loop {
            if let Some(s) = run.next() {
                before(run.journal.done + 1, s);
            }
            match run.step(ctx)? {
                Progress::Running(r) => run = r,
                Progress::Finished(f) => return Ok(f),
            }
        }
    }

    /// Records the failure of step `i`, runs the clean-ups of the steps done since the
    /// last commit step (newest first) and removes the journal when that put the node
    /// back as it was.
    fn fail(
        mut self,
        i: usize,
        step: &Step<A>,
        error: StepError,
        ctx: &A::Context,
    ) -> Box<Failure<A, F>> {
        self.journal
            .record(i, Event::Failed, Some(error.to_string()));
        let from = self.journal.plan.steps[..i]
            .iter()
            .rposition(|s| s.commit)
            .map_or(0, |c| c + 1);
        let committed = from > 0;
        let mut undone = Vec::new();
        let mut undo_errors = Vec::new();
        for j in (from..i).rev() {
            let Some(undo) = self.journal.plan.steps[j].undo.clone() else {
                continue;
            };
            match undo.apply(ctx) {
                Ok(()) => {
                    self.journal.record(j, Event::Undone, None);
                    undone.push(j + 1);
                }
                Err(e) => {
                    undo_errors.push((j + 1, e.to_string()));
                    break; // the steps before it stay as they are: resume from here
                }
            }
        }
        let rolled_back = !committed && undo_errors.is_empty();
        if rolled_back {
            let _ = std::fs::remove_file(&self.path);
        } else {
            // Undone steps are to be done again by a resume.
            if let Some(first) = undone.last() {
                self.journal.done = first - 1;
            }
            let _ = self.journal.save(&self.path);
        }
        Box::new(Failure {
            step: i + 1,
            node: step.node.clone(),
            phase: step.phase.clone(),
            error,
            undone,
            undo_errors,
            rolled_back,
            journal: self.journal,
        })
    }
}

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Its action failed.
    #[error(transparent)]
    Action(Box<dyn std::error::Error + Send + Sync>),
    /// The journal could not be written.
    #[error("recording the run: {0}")]
    Journal(Error),
}

#[cfg(debug_assertions)]
fn pause_point<A, F>(phase: &str, step: usize, plan: &Plan<A, F>) {
    let Ok(want) = std::env::var(PAUSE_ENV) else {
        return;
    };
    let last_of_phase = plan.steps.get(step).is_none_or(|next| next.phase != phase);
    if want == step.to_string() || (want == phase && last_of_phase) {
        tracing::warn!("paused after step {step} ({phase}) for a crash test");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

#[cfg(not(debug_assertions))]
fn pause_point<A, F>(_: &str, _: usize, _: &Plan<A, F>) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files in a directory, as a test node.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Act {
        Touch(PathBuf),
        Remove(PathBuf),
        Fail(String),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct ActError(String);

    impl Action for Act {
        type Context = ();
        type Error = ActError;
        fn describe(&self) -> String {
            match self {
                Act::Touch(p) => format!("create {}", p.display()),
                Act::Remove(p) => format!("remove {}", p.display()),
                Act::Fail(why) => format!("fail: {why}"),
            }
        }
        fn apply(&self, _: &()) -> Result<(), ActError> {
            match self {
                Act::Touch(p) => std::fs::write(p, b"").map_err(|e| ActError(e.to_string())),
                Act::Remove(p) => match std::fs::remove_file(p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(ActError(e.to_string()))
                    }
                    _ => Ok(()),
                },
                Act::Fail(why) => Err(ActError(why.clone())),
            }
        }
    }

    fn plan(dir: &Path, fail_at: Option<usize>, commit_at: Option<usize>) -> Plan<Act, String> {
        let steps = (0..4)
            .map(|i| {
                let p = dir.join(format!("f{i}"));
                let action = if fail_at == Some(i) {
                    Act::Fail(format!("step {} breaks", i + 1))
                } else {
                    Act::Touch(p.clone())
                };
                let s = Step::new("n1", if i < 2 { "first" } else { "second" }, action)
                    .undo(Act::Remove(p));
                if commit_at == Some(i) { s.commit() } else { s }
            })
            .collect();
        Plan {
            kind: "test".into(),
            id: "run1".into(),
            facts: "facts".into(),
            steps,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('f'))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_dry_run_describes_what_runs_and_the_plan_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(dir.path(), None, Some(2));
        let d = p.describe();
        assert_eq!(d.len(), 4);
        assert_eq!(
            d[0].does,
            format!("create {}", dir.path().join("f0").display())
        );
        assert!(d[2].commit);
        assert_eq!(p.phases(), ["first", "second"]);
        let json = serde_json::to_vec(&p).unwrap();
        let back = Plan::<Act, String>::from_json("test", Path::new("p.json"), &json).unwrap();
        assert_eq!(back, p);
        let err = Plan::<Act, String>::from_json("restore", Path::new("p.json"), &json);
        assert!(err.unwrap_err().to_string().contains("kind"));
    }

    #[test]
    fn changed_facts_are_named() {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct Facts {
            port: u16,
            files: Vec<String>,
        }
        let p: Plan<Act, Facts> = Plan {
            kind: "t".into(),
            id: "r".into(),
            facts: Facts {
                port: 6443,
                files: vec!["a".into()],
            },
            steps: Vec::new(),
        };
        assert!(p.check_facts(&p.facts.clone()).is_ok());
        let err = p
            .check_facts(&Facts {
                port: 7443,
                files: vec!["a".into(), "b".into()],
            })
            .unwrap_err()
            .to_string();
        assert!(err.contains("port: was 6443, now 7443"), "{err}");
        assert!(err.contains("files: was [\"a\"]"), "{err}");
    }

    #[test]
    fn a_run_finishes_only_after_every_step_and_logs_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("journal.json");
        let run = Run::start(plan(dir.path(), None, None), &j).unwrap();
        assert!(matches!(
            Run::<Act, String>::start(plan(dir.path(), None, None), &j),
            Err(Error::Locked { .. })
        ));
        let mut seen = Vec::new();
        let finished = run.run_all(&(), |n, _| seen.push(n)).unwrap();
        assert_eq!(seen, [1, 2, 3, 4]);
        assert_eq!(files(dir.path()), ["f0", "f1", "f2", "f3"]);
        let done: Vec<usize> = finished
            .journal()
            .log
            .iter()
            .filter(|e| e.event == Event::Done)
            .map(|e| e.step)
            .collect();
        assert_eq!(done, [1, 2, 3, 4]);
        let archive = dir.path().join("archive/journal.json");
        finished.close(&archive).unwrap();
        assert!(!j.exists() && archive.exists());
    }

    #[test]
    fn a_resumed_run_starts_at_the_step_it_was_on() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("journal.json");
        let run = Run::start(plan(dir.path(), None, None), &j).unwrap();
        let Progress::Running(run) = run.step(&()).unwrap() else {
            panic!("more steps")
        };
        drop(run); // the process dies here
        assert!(matches!(
            Run::<Act, String>::start(plan(dir.path(), None, None), &j),
            Err(Error::InProgress {
                next: 2,
                total: 4,
                ..
            })
        ));
        let run = Run::<Act, String>::resume(&j).unwrap();
        assert_eq!(run.journal().done, 1);
        let mut seen = Vec::new();
        run.run_all(&(), |n, _| seen.push(n)).unwrap();
        assert_eq!(seen, [2, 3, 4], "step 1 is not run again");
    }

    #[test]
    fn a_failure_before_the_commit_rolls_back_and_removes_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("journal.json");
        let run = Run::start(plan(dir.path(), Some(2), None), &j).unwrap();
        let f = run.run_all(&(), |_, _| {}).unwrap_err();
        assert_eq!(f.step, 3);
        assert_eq!(f.undone, [2, 1]);
        assert!(f.rolled_back);
        assert_eq!(files(dir.path()), Vec::<String>::new());
        assert!(!j.exists());
        assert!(f.error.to_string().contains("step 3 breaks"));
    }

    #[test]
    fn a_failure_after_the_commit_keeps_what_came_before_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("journal.json");
        let run = Run::start(plan(dir.path(), Some(3), Some(1)), &j).unwrap();
        let f = run.run_all(&(), |_, _| {}).unwrap_err();
        assert_eq!(f.step, 4);
        assert_eq!(f.undone, [3], "only back to the commit step");
        assert!(!f.rolled_back);
        assert_eq!(files(dir.path()), ["f0", "f1"]);
        let j2 = Journal::<Act, String>::load(&j).unwrap().unwrap();
        assert_eq!(j2.done, 2, "the undone step runs again on resume");
    }
}
