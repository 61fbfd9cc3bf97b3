//! Exit codes (docs/cli.md lists them): a script tells "the answer is no" from "fix the
//! command line", "fix the configuration", "the database is not ready" and "something failed".

use std::fmt;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done.
    Ok = 0,
    /// The command ran and its answer is "no": `status` found something that needs a person,
    /// `audit verify` a broken link, `healthcheck` no healthy server, the demo a failed step, or
    /// the operator declined a confirmation.
    No = 1,
    /// The command line is wrong (clap uses 2 for its own errors; ours follow it).
    Usage = 2,
    /// A setting or a mapping rule is wrong; every problem is printed.
    Config = 3,
    /// The database cannot be reached, or its schema is not the one this build needs (not
    /// migrated yet, or migrated by a newer release).
    NotReady = 4,
    /// Anything else failed at run time (Coder refused, a name was not found, I/O).
    Failed = 5,
}

impl From<Exit> for std::process::ExitCode {
    fn from(exit: Exit) -> Self {
        std::process::ExitCode::from(exit as u8)
    }
}

/// An error that knows its exit code; any other error exits with [`Exit::Failed`].
#[derive(Debug)]
pub struct Classified {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl fmt::Display for Classified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The whole chain here, as `{:#}`: the wrapped error is not exposed as a source, so
        // `main` does not print it twice.
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Classified {}

/// Wrap `error` so the process exits with `exit`.
pub fn with(exit: Exit, error: impl Into<anyhow::Error>) -> anyhow::Error {
    anyhow::Error::new(Classified {
        exit,
        error: error.into(),
    })
}

/// A usage mistake our own code finds (clap finds the others).
pub fn usage(message: impl fmt::Display) -> anyhow::Error {
    with(Exit::Usage, anyhow::anyhow!("{message}"))
}

/// The exit code for an error that ended a command.
pub fn code_of(error: &anyhow::Error) -> Exit {
    error
        .chain()
        .find_map(|e| e.downcast_ref::<Classified>())
        .map_or(Exit::Failed, |c| c.exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unclassified_error_is_a_failure_and_context_keeps_the_class() {
        assert_eq!(code_of(&anyhow::anyhow!("boom")), Exit::Failed);
        let e = with(Exit::NotReady, anyhow::anyhow!("run migrate")).context("opening the store");
        assert_eq!(code_of(&e), Exit::NotReady);
        assert_eq!(format!("{e:#}"), "opening the store: run migrate");
        assert_eq!(code_of(&usage("give an ID")), Exit::Usage);
    }

    #[test]
    fn codes_are_the_documented_numbers() {
        let codes = [
            Exit::Ok,
            Exit::No,
            Exit::Usage,
            Exit::Config,
            Exit::NotReady,
            Exit::Failed,
        ]
        .map(|e| e as u8);
        assert_eq!(codes, [0, 1, 2, 3, 4, 5]);
    }
}
