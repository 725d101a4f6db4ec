//! podid's per-request work without sockets: where the handler's CPU goes, one thread.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use podid_core::admission::{self, Reviewed};
use podid_core::inject::InjectConfig;
use podid_core::model::IdentityIndex;
use serde_json::Value;

/// Time spent per call of each step, median of several rounds.
#[derive(Clone, Copy, Debug)]
pub struct HandlerCost {
    /// `serde_json::from_slice::<Value>` of the review: what the handler paid before it
    /// parsed typed views (a reference point).
    pub parse: Duration,
    /// `admission::review` (parse, plan, patch, base64) and serializing the answer.
    pub review: Duration,
}

/// The answer podid gives for `body`, computed by the same core code the webhook runs.
pub fn answer(body: &[u8], index: &IdentityIndex) -> anyhow::Result<Vec<u8>> {
    match admission::review(body, index, &inject_config()) {
        Reviewed::Answer { review, .. } => Ok(review.to_bytes()),
        Reviewed::BadRequest(e) => bail!("the generated pod is not a valid review: {e}"),
    }
}

/// What `podid-webhook --native-sidecars always` injects with.
fn inject_config() -> InjectConfig {
    InjectConfig {
        native_sidecars: true,
        ..InjectConfig::default()
    }
}

/// Loads the identities the way the webhook does in file mode.
pub fn load_index(identities: &Path) -> anyhow::Result<IdentityIndex> {
    podid_webhook::identities::load_file(identities, "default")
        .with_context(|| format!("loading {}", identities.display()))
}

/// Measures the handler's steps on `body`, about `budget` of wall time in all.
pub fn measure(body: &[u8], index: &IdentityIndex, budget: Duration) -> HandlerCost {
    let cfg = inject_config();
    let parse = median_per_call(budget / 2, || {
        black_box(serde_json::from_slice::<Value>(black_box(body)).is_ok());
    });
    let review = median_per_call(budget / 2, || {
        if let Reviewed::Answer { review, .. } = admission::review(black_box(body), index, &cfg) {
            black_box(review.to_bytes().len());
        }
    });
    HandlerCost { parse, review }
}

/// Runs the handler `count` times on the bench's pod and prints the time per call.
pub fn repeat(identities: &Path, count: u32, value_parse: bool) -> anyhow::Result<()> {
    let index = load_index(identities)?;
    let body = crate::pod::admission_review();
    let cfg = inject_config();
    let started = Instant::now();
    for _ in 0..count {
        if value_parse {
            black_box(serde_json::from_slice::<Value>(black_box(&body)).is_ok());
        } else if let Reviewed::Answer { review, .. } =
            admission::review(black_box(&body), &index, &cfg)
        {
            black_box(review.to_bytes().len());
        }
    }
    let per_call = started.elapsed() / count.max(1);
    println!(
        "handler: {count} reviews, {:.1} us each",
        per_call.as_secs_f64() * 1e6
    );
    Ok(())
}

/// Runs `f` in rounds for about `budget`; the median round's time per call.
fn median_per_call(budget: Duration, mut f: impl FnMut()) -> Duration {
    const ROUNDS: u32 = 11;
    const CALLS: u32 = 50;
    let started = Instant::now();
    let mut rounds = Vec::new();
    while rounds.len() < ROUNDS as usize || started.elapsed() < budget {
        let t = Instant::now();
        for _ in 0..CALLS {
            f();
        }
        rounds.push(t.elapsed() / CALLS);
        if started.elapsed() > budget * 4 {
            break;
        }
    }
    rounds.sort_unstable();
    rounds[rounds.len() / 2]
}
