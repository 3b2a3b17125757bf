//! Prometheus metrics at `/metrics`: requests and latencies by route, and what the service
//! layer counts (provider calls by outcome, claims, credentials issued, failures by reason,
//! rate-limit refusals). The service records through the `metrics` facade; this installs the
//! one process-wide recorder and renders it.

use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use service::Services;

/// Latency buckets (seconds) for every `*_seconds` histogram: from a cached page to a claim
/// that waited out a provider.
const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder, installed on first use (tests build many apps in one process;
/// they share it, as replicas of one process would).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("static, non-empty buckets")
            .install_recorder()
            .expect("the metrics recorder is installed once, here");
        describe();
        // Histograms are drained into their buckets by upkeep; without it they grow.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("spawn the metrics upkeep thread");
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!("oro_http_requests_total", "HTTP requests answered, by method, route and status.");
    describe_histogram!(
        "oro_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by method and route."
    );
    describe_counter!("oro_provider_calls_total", "Calls to Chutes and OpenRouter, by operation and outcome.");
    describe_histogram!("oro_provider_call_duration_seconds", metrics::Unit::Seconds, "Time a provider took to answer, by operation.");
    describe_counter!("oro_claims_total", "claim_work calls, by outcome (claimed, no_work, at_capacity, refused (a replay), error).");
    describe_histogram!("oro_claim_duration_seconds", metrics::Unit::Seconds, "Time to answer claim_work, by outcome.");
    describe_counter!("oro_run_credentials_issued_total", "Per-run credentials handed to validators, by provider.");
    describe_counter!("oro_claim_requeues_total", "Runs put back in the queue because a provider was unwell at claim time.");
    describe_counter!("oro_run_failures_total", "Runs that failed, by reason and stage (claim, evaluation, reaper).");
    describe_counter!("oro_runs_completed_total", "Runs a validator completed, by status.");
    describe_counter!("oro_runs_reaped_total", "Runs whose validator stopped reporting, by outcome.");
    describe_counter!("oro_rate_limited_total", "Requests refused by a rate limit, by action and scope (ip, hotkey).");
}

/// Counts and times every request under its route template (`/v1/miner/inference-auth/{provider}`),
/// never its concrete path, so the label set stays small.
pub fn labels(req: &Request) -> (&'static str, &'static str) {
    let route = match req.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str(),
        // Static files and unknown paths share one label each.
        None if req.uri().path().starts_with("/pkg/") => "/pkg/*",
        None => "unmatched",
    };
    let route = intern(route);
    // Clients may send any method name: only the standard ones become labels.
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    (method, route)
}

/// Records an answered request under its labels (`labels`).
pub fn observe((method, route): (&'static str, &'static str), status: StatusCode, started: Instant) {
    let (duration, requests) = handles(method, route, status);
    duration.record(started.elapsed().as_secs_f64());
    requests.increment(1);
}

/// Route templates as `&'static str`: there are as many as the routers declare (unmatched
/// paths share one label), each leaked once, so a label never allocates.
fn intern(route: &str) -> &'static str {
    static ROUTES: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(Default::default);
    if let Some(known) = ROUTES.read().expect("route labels lock").get(route) {
        return known;
    }
    let mut routes = ROUTES.write().expect("route labels lock");
    if let Some(known) = routes.get(route) {
        return known;
    }
    let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
    routes.insert(leaked);
    leaked
}

/// The request's duration histogram and counter, looked up in the recorder once per method,
/// route and status and kept: building a metric's key allocates, and this runs on every request.
fn handles(method: &'static str, route: &'static str, status: StatusCode) -> (metrics::Histogram, metrics::Counter) {
    type Handles = HashMap<(&'static str, &'static str, u16), (metrics::Histogram, metrics::Counter)>;
    static HANDLES: LazyLock<RwLock<Handles>> = LazyLock::new(Default::default);
    let key = (method, route, status.as_u16());
    if let Some(found) = HANDLES.read().expect("metric handles lock").get(&key) {
        return found.clone();
    }
    // Handles taken before the recorder is installed would count nothing, for good.
    handle();
    let made = (
        metrics::histogram!("oro_http_request_duration_seconds", "method" => method, "route" => route),
        metrics::counter!("oro_http_requests_total", "method" => method, "route" => route, "status" => status.as_u16().to_string()),
    );
    HANDLES.write().expect("metric handles lock").entry(key).or_insert(made).clone()
}

/// `GET /metrics`, behind `Authorization: Bearer $ORO_METRICS_TOKEN` when one is set.
pub async fn render(State(services): State<Services>, req: Request) -> Response {
    if let Some(token) = &services.settings.metrics_token {
        let presented = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let expected = token.expose_secret().as_bytes();
        // Constant time: the comparison must not tell how much of a guess was right.
        let matches =
            presented.is_some_and(|p| p.len() == expected.len() && p.bytes().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0);
        if !matches {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "metrics need the operator's bearer token\n")
                .into_response();
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle().render()).into_response()
}
