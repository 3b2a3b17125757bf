//! Hand-written layers for what every request crosses. `Edge`, the outermost layer of every
//! route, counts and times the answer (`metrics`), refuses a declared body over the limit
//! before anything reads it, and puts the security headers on whatever comes back, refusals
//! of the layers inside included. `PublicGuard` is all the public routes need besides.
//!
//! One service per place instead of a `from_fn` per concern and a layer per header: each of
//! those boxed or moved the whole future of everything inside it on every request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use super::guards::{DEFAULT_CSP, HSTS};
use super::{guards, metrics};

#[derive(Clone, Copy)]
pub struct EdgeLayer {
    /// Whether the public URL is https: HSTS is sent only then.
    pub https: bool,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, https: self.https }
    }
}

#[derive(Clone)]
pub struct Edge<S> {
    inner: S,
    https: bool,
}

impl<S, B> Service<Request> for Edge<S>
where
    S: Service<Request, Response = axum::http::Response<B>, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (labels, started, https) = (metrics::labels(&req), Instant::now(), self.https);
        if let Some(length) = guards::declared_oversize(&req) {
            return Box::pin(async move {
                let mut response = guards::refuse_oversized(req, length).await;
                finish(&mut response, https, labels, started);
                Ok(response)
            });
        }
        let answer = self.inner.call(req);
        Box::pin(async move {
            let Ok(response) = answer.await;
            let mut response = response.map(axum::body::Body::new);
            finish(&mut response, https, labels, started);
            Ok(response)
        })
    }
}

fn finish(response: &mut Response, https: bool, labels: (&'static str, &'static str), started: Instant) {
    security_headers(response.headers_mut(), https);
    metrics::observe(labels, response.status(), started);
}

/// What every answer carries. A page's own Content-Security-Policy (with its script nonce)
/// stays; anything else gets the policy that allows nothing.
fn security_headers(headers: &mut HeaderMap, https: bool) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(DEFAULT_CSP));
    }
    if https {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    }
}

/// The public routes' own guard (health, the model list, the bundle, the documents): a request
/// slot (`ORO_MAX_CONCURRENT_REQUESTS`, shared with every other route) and the refusal of a
/// NUL in the path or query. Every public route is a GET, so no body is looked at.
#[derive(Clone)]
pub struct PublicGuardLayer {
    pub slots: Arc<Semaphore>,
}

impl<S> Layer<S> for PublicGuardLayer {
    type Service = PublicGuard<S>;

    fn layer(&self, inner: S) -> PublicGuard<S> {
        PublicGuard { inner, slots: self.slots.clone() }
    }
}

#[derive(Clone)]
pub struct PublicGuard<S> {
    inner: S,
    slots: Arc<Semaphore>,
}

impl<S> Service<Request> for PublicGuard<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            return Box::pin(std::future::ready(Ok(guards::shed(&req))));
        };
        if let Some(refused) = guards::nul_in_target(&req) {
            return Box::pin(std::future::ready(Ok(refused)));
        }
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await;
            drop(slot);
            response
        })
    }
}
