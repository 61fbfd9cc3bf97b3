//! What the server logs, for a test that must wait for something the server only tells its log
//! (a JWKS file it re-read and refused): the warnings and errors of the `server` crate, from
//! every thread, recorded once [`capture`] has been called.

use std::fmt::{Debug, Write as _};
use std::sync::{Mutex, MutexGuard, Once};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Every recorded event as one line of `field=value` pairs.
static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Record the server's warnings and errors from now on. The recorder is process-wide (the
/// server's workers run on threads of their own), so tests look for lines only they can cause.
pub fn capture() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        tracing::subscriber::set_global_default(Recorder).expect("no other global subscriber");
    });
}

/// How many recorded events contain every one of `parts`.
pub fn count(parts: &[&str]) -> usize {
    events()
        .iter()
        .filter(|line| parts.iter().all(|part| line.contains(part)))
        .count()
}

fn events() -> MutexGuard<'static, Vec<String>> {
    EVENTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Recorder;

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event()
            && *metadata.level() <= Level::WARN
            && metadata.target().starts_with("server")
    }

    fn event(&self, event: &Event<'_>) {
        let mut line = String::new();
        event.record(&mut Line(&mut line));
        events().push(line);
    }

    // Spans are not recorded: every one gets the same id.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}
