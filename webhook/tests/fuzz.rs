//! A bounded fuzz campaign through the real `/mutate` router: every input gets a 400 with
//! a JSON error body or a well-formed AdmissionReview; no panic, no hang.
//!
//! Inputs are mutations of the realistic reviews in `tests/fixtures/reviews`:
//! truncation, wrong types at every level, deep nesting, huge strings, duplicate keys,
//! byte flips, bad escapes. `PODID_FUZZ_INPUTS` sets the count (CI: the default; the
//! full campaign: `PODID_FUZZ_INPUTS=100000`, see docs/BENCHMARKS.md). `PODID_FUZZ_SEED`
//! replays a campaign; a failure prints the seed and the input's index.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fuzz_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine as _;
use fuzz_support::{Mutator, Rng};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use podid_certs::ReloadingCertResolver;
use podid_core::inject::{InjectConfig, plan};
use podid_core::pod::PodView;
use podid_webhook::identities::IdentityStore;
use podid_webhook::metrics::Metrics;
use podid_webhook::server::{AppState, mutate_router};
use serde_json::Value;
use support::{POD_FIXTURES, review_fixture, server::IDENTITIES_YAML};
use tower::ServiceExt as _;

/// Inputs in CI's run: a few seconds.
const DEFAULT_INPUTS: u64 = 3_000;
/// Longest any one input may take (debug build, loaded machine) before it counts as a hang.
const PER_INPUT: Duration = Duration::from_secs(10);
/// The body limit of the router under test (the webhook's default is 3 MiB).
const MAX_BODY: usize = 1024 * 1024;

fn state() -> AppState {
    let index = podid_core::objects::parse_identities_yaml(IDENTITIES_YAML, "apps").unwrap();
    AppState {
        store: Arc::new(IdentityStore::with_index(index)),
        inject: Arc::new(InjectConfig::default()),
        metrics: Arc::new(Metrics::new()),
        resolver: Arc::new(ReloadingCertResolver::empty()),
        max_body_bytes: MAX_BODY,
        request_timeout: Duration::from_secs(5),
        draining: Arc::new(AtomicBool::new(false)),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// What went wrong with one input, if anything.
fn check_answer(status: StatusCode, content_type: Option<&str>, body: &[u8]) -> Result<(), String> {
    if content_type != Some("application/json") {
        return Err(format!("content-type {content_type:?}"));
    }
    let json: Value = serde_json::from_slice(body).map_err(|e| format!("body not JSON: {e}"))?;
    match status {
        StatusCode::BAD_REQUEST => {
            let ok = json["error"].as_str().is_some_and(|e| !e.is_empty())
                && json["message"].as_str().is_some_and(|m| !m.is_empty());
            ok.then_some(()).ok_or_else(|| format!("400 body {json}"))
        }
        StatusCode::OK => check_review(&json),
        other => Err(format!("status {other}: {json}")),
    }
}

/// A well-formed admission/v1 answer: uid, allowed, a reason when denied, a patch of adds.
fn check_review(review: &Value) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{what}: {review}"));
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return fail("envelope");
    }
    let response = &review["response"];
    if response["uid"].as_str().is_none_or(str::is_empty) {
        return fail("uid");
    }
    match response["allowed"].as_bool() {
        Some(false) => {
            let message = response["status"]["message"].as_str().unwrap_or_default();
            if response["status"]["code"] != 403 || message.is_empty() {
                return fail("denial without code 403 and a message");
            }
            if response.get("patch").is_some() {
                return fail("denial with a patch");
            }
        }
        Some(true) => {
            if let Some(patch) = response.get("patch") {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(patch.as_str().unwrap_or_default())
                    .map_err(|e| format!("patch not base64: {e}"))?;
                let ops: Vec<Value> =
                    serde_json::from_slice(&bytes).map_err(|e| format!("patch not JSON: {e}"))?;
                if response["patchType"] != "JSONPatch" || ops.iter().any(|op| op["op"] != "add") {
                    return fail("patch not only adds");
                }
            }
        }
        None => return fail("allowed"),
    }
    Ok(())
}

/// The planner alone on the mutated object, when the input still parses: no panic.
fn plan_directly(body: &[u8], state: &AppState) {
    if let Ok(review) = serde_json::from_slice::<Value>(body) {
        let object = &review["request"]["object"];
        let _ = plan(
            &PodView::new(object, "apps"),
            &state.store.snapshot(),
            &state.inject,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_reviews_get_a_json_400_or_a_well_formed_review_without_panic_or_hang() {
    let inputs = env_u64("PODID_FUZZ_INPUTS").unwrap_or(DEFAULT_INPUTS);
    let seed = env_u64("PODID_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    println!("fuzz: {inputs} inputs, PODID_FUZZ_SEED={seed}");
    let seeds: Vec<Value> = POD_FIXTURES.iter().map(|f| review_fixture(f)).collect();
    let state = state();
    let router = mutate_router(state.clone());
    let mut rng = Rng::new(seed);
    let mut counts = std::collections::BTreeMap::<String, u64>::new();
    let started = Instant::now();
    for i in 0..inputs {
        let seed_review = &seeds[rng.below(seeds.len() as u64) as usize];
        let (kind, body) = Mutator::new(&mut rng).mutate(seed_review);
        let request = Request::post("/mutate")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.clone()))
            .unwrap();
        let (router, state) = (router.clone(), state.clone());
        let plan_body = body.clone();
        // A task per input: a panic surfaces as a JoinError instead of ending the campaign.
        let task = tokio::spawn(async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            plan_directly(&plan_body, &state);
            (status, content_type, bytes)
        });
        let outcome = tokio::time::timeout(PER_INPUT, task).await;
        let what = || {
            let shown = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            format!(
                "input {i} ({kind}, {} bytes, PODID_FUZZ_SEED={seed}): {shown}",
                body.len()
            )
        };
        let (status, content_type, bytes) = match outcome {
            Err(_) => panic!("hang: no answer within {PER_INPUT:?} for {}", what()),
            Ok(Err(e)) => panic!("panic ({e}) for {}", what()),
            Ok(Ok(answer)) => answer,
        };
        if let Err(e) = check_answer(status, content_type.as_deref(), &bytes) {
            panic!("{e} for {}", what());
        }
        *counts
            .entry(format!("{kind} → {}", status.as_u16()))
            .or_default() += 1;
    }
    println!(
        "fuzz: {inputs} inputs in {:.1?}, 0 panics, 0 hangs",
        started.elapsed()
    );
    for (what, n) in &counts {
        println!("  {what}: {n}");
    }
}
