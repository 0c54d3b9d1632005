//! Counts and latencies of every gRPC call, by method and status code, as a tower layer in front
//! of every listener's services (so refused calls count too).
//!
//! A call's status is in the response headers when it fails before any message
//! ("trailers-only"), otherwise in the trailers after the last message: the response body is
//! wrapped to read them, and the call is recorded when its body ends — or, if the client goes
//! away first, as `CANCELLED` when the body is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::exposition::{Kind, Page};

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// One histogram: how many calls took at most each bucket's bound, their count and total time.
#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

/// Every call's outcome since the daemon started, by (method, code).
#[derive(Debug, Default)]
pub(crate) struct RpcMetrics {
    calls: Mutex<HashMap<(String, &'static str), Histogram>>,
    /// Calls started and not finished, by method (long-lived streams such as push sessions).
    in_flight: Mutex<HashMap<String, i64>>,
}

impl RpcMetrics {
    fn started(&self, method: &str) {
        if let Ok(mut in_flight) = self.in_flight.lock() {
            *in_flight.entry(method.to_string()).or_default() += 1;
        }
    }

    fn record(&self, method: &str, code: tonic::Code, seconds: f64) {
        if let Ok(mut in_flight) = self.in_flight.lock() {
            *in_flight.entry(method.to_string()).or_default() -= 1;
        }
        let Ok(mut calls) = self.calls.lock() else { return };
        let h = calls.entry((method.to_string(), code_name(code))).or_default();
        h.count += 1;
        h.sum_seconds += seconds;
        for (bound, bucket) in BUCKETS.iter().zip(h.buckets.iter_mut()) {
            if seconds <= *bound {
                *bucket += 1;
            }
        }
    }

    /// Writes `passerelle_rpc_requests_total` and `passerelle_rpc_duration_seconds`.
    pub(crate) fn write(&self, page: &mut Page) {
        let mut calls: Vec<((String, &'static str), Histogram)> = self
            .calls
            .lock()
            .map(|c| c.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        calls.sort_by(|a, b| a.0.cmp(&b.0));
        page.family(
            "passerelle_rpc_requests_total",
            Kind::Counter,
            "gRPC calls served, by method and status code",
        );
        for ((method, code), h) in &calls {
            page.sample(
                "passerelle_rpc_requests_total",
                &[("method", method), ("code", code)],
                h.count as f64,
            );
        }
        let mut in_flight: Vec<(String, i64)> = self
            .in_flight
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default();
        in_flight.sort();
        page.family(
            "passerelle_rpc_in_flight",
            Kind::Gauge,
            "Calls in progress, by method (open streams included)",
        );
        for (method, count) in &in_flight {
            page.sample("passerelle_rpc_in_flight", &[("method", method)], *count as f64);
        }
        page.family(
            "passerelle_rpc_duration_seconds",
            Kind::Histogram,
            "Time from a call's arrival to its status (a stream's whole life), by method and code",
        );
        for ((method, code), h) in &calls {
            let labels = [("method", method.as_str()), ("code", *code)];
            for (bound, count) in BUCKETS.iter().zip(h.buckets) {
                let le = bound.to_string();
                page.sample(
                    "passerelle_rpc_duration_seconds_bucket",
                    &[labels[0], labels[1], ("le", &le)],
                    count as f64,
                );
            }
            page.sample(
                "passerelle_rpc_duration_seconds_bucket",
                &[labels[0], labels[1], ("le", "+Inf")],
                h.count as f64,
            );
            page.sample("passerelle_rpc_duration_seconds_sum", &labels, h.sum_seconds);
            page.sample("passerelle_rpc_duration_seconds_count", &labels, h.count as f64);
        }
    }
}

/// The canonical name of a status code, as gRPC's specification spells it.
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The method label of a request path: known services by name, anything else as `unknown` (a
/// scanner probing random paths must not grow the label set without bound).
fn method_label(path: &str) -> String {
    let known = ["/passerelle.v1.", "/grpc.health.v1.", "/grpc.reflection.v1"];
    if known.iter().any(|p| path.starts_with(p)) && path.len() <= 128 {
        path.trim_start_matches('/').to_string()
    } else {
        "unknown".into()
    }
}

/// The status code in a header map (`grpc-status`), if any.
fn status_in(headers: &http::HeaderMap) -> Option<tonic::Code> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(tonic::Code::from_i32)
}

/// Tower layer recording every call into [`RpcMetrics`].
#[derive(Debug, Clone)]
pub(crate) struct RpcMetricsLayer {
    metrics: Arc<RpcMetrics>,
}

impl RpcMetricsLayer {
    /// Records into `metrics`.
    pub(crate) fn new(metrics: Arc<RpcMetrics>) -> Self {
        Self { metrics }
    }
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Metered<S> {
        Metered { inner, metrics: self.metrics.clone() }
    }
}

/// The service made by [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Metered<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody> tower::Service<http::Request<ReqBody>> for Metered<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let call = Call {
            metrics: self.metrics.clone(),
            method: method_label(request.uri().path()),
            start: Instant::now(),
        };
        call.metrics.started(&call.method);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match response.await {
                Ok(response) => response,
                Err(e) => {
                    call.finish(tonic::Code::Internal);
                    return Err(e);
                }
            };
            if let Some(code) = status_in(response.headers()) {
                // Trailers-only: the call is over with its headers.
                call.finish(code);
                return Ok(response);
            }
            Ok(response.map(|body| tonic::body::Body::new(MeteredBody { inner: body, call: Some(call) })))
        })
    }
}

/// A call being timed.
struct Call {
    metrics: Arc<RpcMetrics>,
    method: String,
    start: Instant,
}

impl Call {
    fn finish(self, code: tonic::Code) {
        self.metrics.record(&self.method, code, self.start.elapsed().as_secs_f64());
    }
}

/// A response body that records its call when the trailers pass (or the body ends or is dropped).
struct MeteredBody {
    inner: tonic::body::Body,
    call: Option<Call>,
}

impl Body for MeteredBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        let code = match &frame {
            Some(Ok(f)) => f.trailers_ref().map(|t| status_in(t).unwrap_or(tonic::Code::Unknown)),
            Some(Err(status)) => Some(status.code()),
            None => Some(tonic::Code::Unknown),
        };
        if let Some(code) = code
            && let Some(call) = this.call.take()
        {
            call.finish(code);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        // The client went away before the status: the call was cancelled.
        if let Some(call) = self.call.take() {
            call.finish(tonic::Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_land_in_cumulative_buckets() {
        let metrics = RpcMetrics::default();
        metrics.record("passerelle.v1.StructureService/ListNeeds", tonic::Code::Ok, 0.003);
        metrics.record("passerelle.v1.StructureService/ListNeeds", tonic::Code::Ok, 0.2);
        metrics.record("passerelle.v1.StructureService/ListNeeds", tonic::Code::InvalidArgument, 0.001);
        let mut page = Page::default();
        metrics.write(&mut page);
        let text = page.finish();
        let ok = "method=\"passerelle.v1.StructureService/ListNeeds\",code=\"OK\"";
        assert!(text.contains(&format!("passerelle_rpc_requests_total{{{ok}}} 2\n")), "{text}");
        assert!(text.contains(&format!("passerelle_rpc_duration_seconds_bucket{{{ok},le=\"0.001\"}} 0\n")));
        assert!(text.contains(&format!("passerelle_rpc_duration_seconds_bucket{{{ok},le=\"0.005\"}} 1\n")));
        assert!(text.contains(&format!("passerelle_rpc_duration_seconds_bucket{{{ok},le=\"0.25\"}} 2\n")));
        assert!(text.contains(&format!("passerelle_rpc_duration_seconds_bucket{{{ok},le=\"+Inf\"}} 2\n")));
        assert!(text.contains("code=\"INVALID_ARGUMENT\"} 1\n"));
        assert_eq!(method_label("/evil/../../x"), "unknown");
    }
}
