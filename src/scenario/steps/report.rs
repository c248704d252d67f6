//! What a step gives back: its outcome with the lines that say what it did
//! ([`StepReport`]), or the harness's failure with the lines noted until
//! then ([`StepError`]). A step writes a [`StepLog`] as it goes (what it
//! sent, what came back, what is wrong) and ends it in one of those; a
//! failure's detail is made from the log itself.

use crate::lab::LabError;
use crate::model::verdict::Outcome;

/// A step that ran: its outcome and its log.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    pub outcome: Outcome,
    pub log: Vec<String>,
}

/// A step the harness could not do, with what the step had noted.
#[derive(Debug)]
pub struct StepError {
    pub source: Box<LabError>,
    pub log: Vec<String>,
}

/// What running one step gives.
pub type StepResult = Result<StepReport, StepError>;

/// What a step notes as it goes: the lines of its log, and the problems
/// found (each a failure, joined into the failed outcome's message).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StepLog {
    lines: Vec<String>,
    problems: Vec<String>,
}

impl StepLog {
    pub fn new() -> StepLog {
        StepLog::default()
    }

    /// A log that starts with `line`.
    pub fn with(line: impl Into<String>) -> StepLog {
        let mut log = StepLog::new();
        log.note(line);
        log
    }

    /// A line of the log: what was sent, what came back.
    pub fn note(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// Something the step found wrong.
    pub fn problem(&mut self, problem: impl Into<String>) {
        self.problems.push(problem.into());
    }

    /// The problems found so far.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// `part`'s lines after this log's, its problems after these.
    pub fn absorb(&mut self, part: StepLog) {
        self.lines.extend(part.lines);
        self.problems.extend(part.problems);
    }

    /// Its lines and its problems.
    pub fn into_parts(self) -> (Vec<String>, Vec<String>) {
        (self.lines, self.problems)
    }

    /// The lines so far, one a line: a failure's detail.
    pub fn detail(&self) -> String {
        self.lines.join("\n")
    }

    /// The step ends with `outcome`.
    pub fn end(self, outcome: Outcome) -> StepReport {
        StepReport {
            outcome,
            log: self.lines,
        }
    }

    /// The step passed.
    pub fn pass(self) -> StepReport {
        self.end(Outcome::Passed)
    }

    /// The step failed with `message`; the detail is the log so far.
    pub fn fail(self, message: impl Into<String>) -> StepReport {
        let detail = self.detail();
        self.fail_with(message, detail)
    }

    /// The step failed with `message` and `detail` (the gateway's log, a
    /// file's content).
    pub fn fail_with(self, message: impl Into<String>, detail: impl Into<String>) -> StepReport {
        self.end(Outcome::Failed {
            message: message.into(),
            detail: detail.into(),
        })
    }

    /// The verdict on the problems found: passed when there are none;
    /// otherwise they join the log and the step fails with all of them.
    pub fn judge(mut self) -> StepReport {
        if self.problems.is_empty() {
            return self.pass();
        }
        let message = self.problems.join("; ");
        let problems = std::mem::take(&mut self.problems);
        self.lines.extend(problems);
        self.fail(message)
    }

    /// A part of the step done as a step of its own: its lines join this
    /// log and its outcome is returned; its harness error comes back with
    /// this log's lines before its own.
    pub fn include(&mut self, part: StepResult) -> Result<Outcome, StepError> {
        match part {
            Ok(report) => {
                self.lines.extend(report.log);
                Ok(report.outcome)
            }
            Err(mut e) => {
                let mut log = self.lines.clone();
                log.append(&mut e.log);
                e.log = log;
                Err(e)
            }
        }
    }

    /// The harness could not do the step: `source`, with the log so far.
    pub fn error(&self, source: impl Into<LabError>) -> StepError {
        StepError {
            source: Box::new(source.into()),
            log: self.lines.clone(),
        }
    }

    /// `r`'s value, or the harness's failure with the log so far.
    pub fn harness<T, E: Into<LabError>>(&self, r: Result<T, E>) -> Result<T, StepError> {
        r.map_err(|e| self.error(e))
    }
}

/// A harness error of `service` (a lab service or a step's own work).
pub(crate) fn lab_err(
    service: &str,
    e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> LabError {
    LabError::Service {
        service: service.to_string(),
        source: std::io::Error::other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_made_from_the_log() {
        let mut log = StepLog::with("GET / from lan-admin");
        log.note("answer 200");
        let r = log.clone().fail("expected no answer");
        assert_eq!(
            r.outcome,
            Outcome::Failed {
                message: "expected no answer".into(),
                detail: "GET / from lan-admin\nanswer 200".into()
            }
        );
        assert_eq!(r.log, ["GET / from lan-admin", "answer 200"]);
        assert_eq!(log.clone().pass().outcome, Outcome::Passed);
        let e = log.error(lab_err("probe", "no namespace"));
        assert_eq!(e.log.len(), 2);
    }

    #[test]
    fn the_verdict_adds_the_problems_to_the_log() {
        let mut log = StepLog::with("sent");
        assert_eq!(log.clone().judge().outcome, Outcome::Passed);
        let mut far = StepLog::with("whoami logged it");
        far.problem("dns never received it");
        log.problem("no answer");
        log.absorb(far);
        let r = log.judge();
        assert_eq!(
            r.outcome,
            Outcome::Failed {
                message: "no answer; dns never received it".into(),
                detail: "sent\nwhoami logged it\nno answer\ndns never received it".into()
            }
        );
        assert_eq!(r.log.len(), 4);
    }
}
