//! Injected faults: a bounded number of upcoming Coder API requests misbehave.

use serde::{Deserialize, Serialize};

/// Most requests one fault may affect.
pub const MAX_FAULT_COUNT: u32 = 1_000;
/// Longest latency a fault may add, in milliseconds.
pub const MAX_FAULT_LATENCY_MS: u64 = 10_000;

/// How the affected requests misbehave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer this status (4xx/5xx) with a Coder error body, optionally with `Retry-After`
    /// (seconds or an HTTP-date, sent verbatim).
    Status {
        /// HTTP status.
        status: u16,
        /// `Retry-After` header value.
        #[serde(default)]
        retry_after: Option<String>,
    },
    /// Handle the request (its change takes effect), then answer this status instead of the
    /// real answer: a create that succeeded but reported 500.
    StatusAfterEffect {
        /// HTTP status.
        status: u16,
    },
    /// Wait this long, then handle the request normally.
    Latency {
        /// Added latency.
        millis: u64,
    },
    /// Close the TCP connection without any HTTP answer.
    Drop,
    /// Hold the request unanswered until [`crate::FakeHandle::release_held`] (or
    /// `POST /__fake/held/release`) lets it through, then handle it normally: a call that is in
    /// flight for exactly as long as a test wants. A held request ends at the latest when the
    /// fake stops.
    Hold,
    /// Answer this 3xx with `Location: location`, as a proxy or ingress in front of Coder does
    /// when the bridge's Coder URL is not the final one (http to https, another host, a login
    /// page).
    Redirect {
        /// HTTP status (300 to 399).
        status: u16,
        /// `Location` header value, sent verbatim.
        location: String,
    },
}

/// A fault that applies to the next `count` Coder API requests whose path starts with
/// `path_prefix` (all paths when `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// Only requests whose path starts with this.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Only requests with this method (`POST`); all methods when `None`.
    #[serde(default)]
    pub method: Option<String>,
    /// How many requests (1 to [`MAX_FAULT_COUNT`]).
    pub count: u32,
}

impl Fault {
    /// A fault on the next `count` requests.
    pub fn next(count: u32, kind: FaultKind) -> Fault {
        Fault {
            kind,
            path_prefix: None,
            method: None,
            count,
        }
    }

    /// Restricts the fault to paths starting with `prefix`.
    pub fn on_paths(self, prefix: &str) -> Fault {
        Fault {
            path_prefix: Some(prefix.to_owned()),
            ..self
        }
    }

    /// Restricts the fault to requests with `method` (a create, not the lookups before it).
    pub fn on_method(self, method: &str) -> Fault {
        Fault {
            method: Some(method.to_ascii_uppercase()),
            ..self
        }
    }

    /// Checks the bounds: faults must end.
    pub fn validate(&self) -> Result<(), String> {
        if self.count == 0 || self.count > MAX_FAULT_COUNT {
            return Err(format!("count must be 1..={MAX_FAULT_COUNT}"));
        }
        match &self.kind {
            FaultKind::Status { status, .. } | FaultKind::StatusAfterEffect { status }
                if !(400..=599).contains(status) =>
            {
                Err("status must be 400..=599".into())
            }
            FaultKind::Redirect { status, location }
                if !(300..=399).contains(status) || location.is_empty() =>
            {
                Err("a redirect needs a status 300..=399 and a location".into())
            }
            FaultKind::Latency { millis } if *millis > MAX_FAULT_LATENCY_MS => {
                Err(format!("latency must be at most {MAX_FAULT_LATENCY_MS} ms"))
            }
            _ => Ok(()),
        }
    }

    fn applies_to(&self, method: &str, path: &str) -> bool {
        self.path_prefix
            .as_deref()
            .is_none_or(|prefix| path.starts_with(prefix))
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
    }
}

/// Longest outage the fake holds, in milliseconds: outages end by themselves.
pub const MAX_OUTAGE_MS: u64 = 600_000;

/// Coder as a whole is unavailable for a while: every Coder API request (not the control
/// routes) is dropped or answered one status, however many come, until `millis` have passed or
/// the outage is ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// `drop` (no answer, like a Coder that is down) or `status` (like a gateway's 503).
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How long it lasts (1 to [`MAX_OUTAGE_MS`]).
    pub millis: u64,
}

impl Outage {
    /// Checks the bounds: an outage ends, and is a dropped connection or an error status.
    pub fn validate(&self) -> Result<(), String> {
        if self.millis == 0 || self.millis > MAX_OUTAGE_MS {
            return Err(format!("millis must be 1..={MAX_OUTAGE_MS}"));
        }
        match &self.kind {
            FaultKind::Drop => Ok(()),
            FaultKind::Status { status, .. } if (400..=599).contains(status) => Ok(()),
            _ => Err("an outage drops connections or answers a 4xx/5xx status".into()),
        }
    }
}

/// An outage in progress.
#[derive(Debug, Clone)]
pub(crate) struct ActiveOutage {
    pub kind: FaultKind,
    pub until: std::time::Instant,
}

/// What the outage in progress, if any, does to a request; forgets an outage that is over.
pub(crate) fn outage(active: &mut Option<ActiveOutage>) -> Option<FaultKind> {
    match active {
        Some(outage) if crate::instant() < outage.until => Some(outage.kind.clone()),
        Some(_) => {
            *active = None;
            None
        }
        None => None,
    }
}

/// Takes one use of the first pending fault that matches `method`, `path` and `wanted`.
pub(crate) fn take(
    faults: &mut Vec<Fault>,
    method: &str,
    path: &str,
    wanted: impl Fn(&FaultKind) -> bool,
) -> Option<FaultKind> {
    let index = faults
        .iter()
        .position(|f| f.count > 0 && f.applies_to(method, path) && wanted(&f.kind))?;
    let fault = &mut faults[index];
    fault.count -= 1;
    let kind = fault.kind.clone();
    if fault.count == 0 {
        faults.remove(index);
    }
    Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_bounded_and_consumed() {
        let mut faults = vec![
            Fault::next(2, FaultKind::Drop).on_paths("/api/v2/users"),
            Fault::next(
                1,
                FaultKind::Status {
                    status: 503,
                    retry_after: None,
                },
            ),
        ];
        let is_drop = |k: &FaultKind| matches!(k, FaultKind::Drop);
        assert_eq!(take(&mut faults, "GET", "/api/v2/groups/x", is_drop), None);
        assert_eq!(
            take(&mut faults, "GET", "/api/v2/users/x", is_drop),
            Some(FaultKind::Drop)
        );
        assert_eq!(
            take(&mut faults, "GET", "/api/v2/users", is_drop),
            Some(FaultKind::Drop)
        );
        assert_eq!(take(&mut faults, "GET", "/api/v2/users", is_drop), None);
        assert_eq!(faults.len(), 1);
        let mut creates = vec![Fault::next(1, FaultKind::Drop).on_method("post")];
        assert_eq!(take(&mut creates, "GET", "/api/v2/users", is_drop), None);
        assert_eq!(
            take(&mut creates, "POST", "/api/v2/users", is_drop),
            Some(FaultKind::Drop)
        );
        assert!(Fault::next(0, FaultKind::Drop).validate().is_err());
        assert!(
            Fault::next(1, FaultKind::Latency { millis: 60_000 })
                .validate()
                .is_err()
        );
        assert!(
            Fault::next(
                1,
                FaultKind::Status {
                    status: 200,
                    retry_after: None
                }
            )
            .validate()
            .is_err()
        );
        let outage = |kind| Outage {
            kind,
            millis: 1_000,
        };
        assert!(outage(FaultKind::Drop).validate().is_ok());
        assert!(outage(FaultKind::Latency { millis: 5 }).validate().is_err());
        assert!(
            Outage {
                millis: MAX_OUTAGE_MS + 1,
                ..outage(FaultKind::Drop)
            }
            .validate()
            .is_err()
        );
        let mut active = Some(ActiveOutage {
            kind: FaultKind::Drop,
            until: crate::instant() + std::time::Duration::from_secs(60),
        });
        assert_eq!(super::outage(&mut active), Some(FaultKind::Drop));
        active = Some(ActiveOutage {
            kind: FaultKind::Drop,
            until: crate::instant(),
        });
        assert_eq!(super::outage(&mut active), None, "over");
        assert!(active.is_none());
        let redirect = |status, location: &str| {
            Fault::next(
                1,
                FaultKind::Redirect {
                    status,
                    location: location.into(),
                },
            )
            .validate()
        };
        assert!(redirect(302, "https://elsewhere.example.com/").is_ok());
        assert!(redirect(404, "https://elsewhere.example.com/").is_err());
        assert!(redirect(301, "").is_err());
        let parsed: Fault =
            serde_json::from_str(r#"{"kind":"status","status":429,"retry_after":"7","count":3}"#)
                .unwrap();
        assert_eq!(
            parsed.kind,
            FaultKind::Status {
                status: 429,
                retry_after: Some("7".into())
            }
        );
    }
}
