//! Following a long-running operation: `Azure-AsyncOperation`, else `Location`, else the resource's `provisioningState`, to `Succeeded`, `Failed` or `Canceled`.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::answer::{Answer, classify, classify_failed_operation};
use crate::seams::ArmError;

/// Polls in a row that may fail (5xx, no answer) before the outcome is called unknown.
const MAX_POLL_FAILURES: u32 = 5;

/// Where the operation's progress is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Monitor {
    /// `Azure-AsyncOperation`: a status document `{"status": …, "error": …}`.
    AsyncOperation(String),
    /// `Location`: 202 while running, 200/204 once done.
    Location(String),
    /// No header: the resource itself, until `provisioningState` is terminal.
    Resource(String),
}

/// What one poll said.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Progress {
    /// Ended, applied.
    Succeeded,
    /// Still running; poll again after this (ARM's `Retry-After`) or the default.
    Running(Option<Duration>),
    /// Ended without applying, or refused.
    Failed(ArmError),
}

/// What the answer to a PATCH asks us to follow; `None` when it is already done.
pub(super) fn monitor_of(answer: &Answer, resource_url: &str) -> Option<Monitor> {
    if let Some(url) = answer.header("azure-asyncoperation") {
        return Some(Monitor::AsyncOperation(url.to_owned()));
    }
    if let Some(url) = answer.header("location") {
        return Some(Monitor::Location(url.to_owned()));
    }
    let state = provisioning_state(&answer.json());
    let done = answer.status != 202 && state.as_deref().is_none_or(is_succeeded);
    (!done).then(|| Monitor::Resource(resource_url.to_owned()))
}

impl Monitor {
    /// The URL to GET.
    pub(super) fn url(&self) -> &str {
        match self {
            Self::AsyncOperation(u) | Self::Location(u) | Self::Resource(u) => u,
        }
    }

    /// Reads one poll's answer. `Err` is a failed poll (retry it a few times);
    /// `Ok` says where the operation is.
    pub(super) fn read(&self, answer: &Answer) -> Result<Progress, ArmError> {
        let wait = answer.retry_after();
        if !answer.is_success() {
            return match classify(answer, Duration::ZERO) {
                // Polls are throttled too; the operation runs on meanwhile.
                ArmError::Throttled { retry_after } => Ok(Progress::Running(Some(retry_after))),
                e => Err(e),
            };
        }
        let body = answer.json();
        let status = match self {
            Self::AsyncOperation(_) => body
                .get("status")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Self::Location(_) if answer.status == 202 => None,
            Self::Location(_) => Some(body_status(&body).unwrap_or_else(|| "Succeeded".into())),
            Self::Resource(_) => provisioning_state(&body),
        };
        Ok(
            match status.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("succeeded") => Progress::Succeeded,
                Some("failed") => Progress::Failed(classify_failed_operation(
                    body.get("error").unwrap_or(&Value::Null),
                )),
                Some("canceled" | "cancelled") => Progress::Failed(ArmError::OperationFailed(
                    "the operation was canceled".into(),
                )),
                _ => Progress::Running(wait),
            },
        )
    }
}

/// How long to poll, and when to give up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Schedule {
    /// Before the first poll (the PATCH answer's `Retry-After`, else `interval`).
    pub first: Duration,
    /// Between polls when ARM sends no `Retry-After`.
    pub interval: Duration,
    /// The operation's overall deadline.
    pub deadline: Instant,
}

/// Polls through `poll` (one GET of the monitor URL) until the operation ends.
///
/// A poll that fails is retried up to [`MAX_POLL_FAILURES`] times in a row;
/// past that, or past the deadline, the outcome is unknown and reported as
/// [`ArmError::Transient`] (the executor re-reads the target).
pub(super) async fn follow<F, Fut>(
    monitor: &Monitor,
    schedule: Schedule,
    mut poll: F,
) -> Result<(), ArmError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Answer, ArmError>>,
{
    let mut wait = schedule.first;
    let mut failures = 0;
    loop {
        if Instant::now() + wait > schedule.deadline {
            return Err(ArmError::Transient(format!(
                "operation {} did not end in time",
                monitor.url()
            )));
        }
        tokio::time::sleep(wait).await;
        match poll().await.and_then(|answer| monitor.read(&answer)) {
            Ok(Progress::Succeeded) => return Ok(()),
            Ok(Progress::Failed(e)) => return Err(e),
            Ok(Progress::Running(after)) => {
                failures = 0;
                wait = after.unwrap_or(schedule.interval);
            }
            Err(e) => {
                failures += 1;
                if failures >= MAX_POLL_FAILURES {
                    return Err(ArmError::Transient(format!(
                        "polling operation {}: {e}",
                        monitor.url()
                    )));
                }
                wait = schedule.interval;
            }
        }
    }
}

fn provisioning_state(body: &Value) -> Option<String> {
    body.pointer("/properties/provisioningState")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn body_status(body: &Value) -> Option<String> {
    body.get("status")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| provisioning_state(body))
}

fn is_succeeded(state: &str) -> bool {
    state.eq_ignore_ascii_case("succeeded")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, HeaderValue};
    use serde_json::json;

    fn answer(status: u16, body: Value, headers: &[(&'static str, &'static str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        Answer {
            status,
            headers: map,
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn azure_async_operation_is_preferred_over_location() {
        let a = answer(
            200,
            json!({}),
            &[
                ("azure-asyncoperation", "https://a/op"),
                ("location", "https://a/l"),
            ],
        );
        assert_eq!(
            monitor_of(&a, "r"),
            Some(Monitor::AsyncOperation("https://a/op".into()))
        );
        let a = answer(202, Value::Null, &[("location", "https://a/l")]);
        assert_eq!(
            monitor_of(&a, "r"),
            Some(Monitor::Location("https://a/l".into()))
        );
    }

    #[test]
    fn an_answer_without_headers_is_done_unless_still_updating() {
        let done = answer(
            200,
            json!({"properties": {"provisioningState": "Succeeded"}}),
            &[],
        );
        assert_eq!(monitor_of(&done, "r"), None);
        let updating = answer(
            200,
            json!({"properties": {"provisioningState": "Updating"}}),
            &[],
        );
        assert_eq!(
            monitor_of(&updating, "r"),
            Some(Monitor::Resource("r".into()))
        );
        assert_eq!(
            monitor_of(&answer(202, Value::Null, &[]), "r"),
            Some(Monitor::Resource("r".into()))
        );
    }

    #[test]
    fn operation_status_documents_are_read_case_insensitively() {
        let m = Monitor::AsyncOperation("u".into());
        let running = answer(
            200,
            json!({"status": "InProgress"}),
            &[("retry-after", "3")],
        );
        assert_eq!(
            m.read(&running).unwrap(),
            Progress::Running(Some(Duration::from_secs(3)))
        );
        assert_eq!(
            m.read(&answer(200, json!({"status": "succeeded"}), &[]))
                .unwrap(),
            Progress::Succeeded
        );
        let failed = answer(
            200,
            json!({"status": "Failed", "error": {"code": "InternalExecutionError", "message": "m"}}),
            &[],
        );
        assert!(matches!(
            m.read(&failed).unwrap(),
            Progress::Failed(ArmError::OperationFailed(_))
        ));
        let canceled = m
            .read(&answer(200, json!({"status": "Canceled"}), &[]))
            .unwrap();
        assert!(matches!(
            canceled,
            Progress::Failed(ArmError::OperationFailed(_))
        ));
    }

    #[test]
    fn location_polls_run_until_the_answer_is_no_longer_202() {
        let m = Monitor::Location("u".into());
        assert_eq!(
            m.read(&answer(202, Value::Null, &[])).unwrap(),
            Progress::Running(None)
        );
        assert_eq!(
            m.read(&answer(204, Value::Null, &[])).unwrap(),
            Progress::Succeeded
        );
        assert_eq!(
            m.read(&answer(200, json!({"status": "Succeeded"}), &[]))
                .unwrap(),
            Progress::Succeeded
        );
    }

    #[test]
    fn a_throttled_poll_waits_and_a_failed_poll_is_an_error() {
        let m = Monitor::AsyncOperation("u".into());
        let throttled = answer(429, json!({}), &[("retry-after", "9")]);
        assert_eq!(
            m.read(&throttled).unwrap(),
            Progress::Running(Some(Duration::from_secs(9)))
        );
        assert!(m.read(&answer(503, json!({}), &[])).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn polling_gives_up_after_repeated_failures_or_the_deadline() {
        let m = Monitor::AsyncOperation("u".into());
        let schedule = Schedule {
            first: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            deadline: Instant::now() + Duration::from_secs(60),
        };
        let mut polls = 0;
        let failing = follow(&m, schedule, || {
            polls += 1;
            async { Err(ArmError::Transient("down".into())) }
        });
        assert!(matches!(failing.await, Err(ArmError::Transient(_))));
        assert_eq!(polls, MAX_POLL_FAILURES);
        let endless = follow(&m, schedule, || async {
            Ok(answer(200, json!({"status": "InProgress"}), &[]))
        });
        assert!(matches!(endless.await, Err(ArmError::Transient(_))));
    }
}
