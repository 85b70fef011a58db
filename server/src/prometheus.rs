//! `/metrics` in Prometheus text format, on a listener of its own: the
//! server's recorder, the count of HTTP responses, and the scrape route.
//!
//! It is off unless `YOUMI_METRICS_LISTEN` names an address, and it is never
//! served on the API's port, so that it cannot be public by accident. Each
//! server has a recorder of its own rather than the process's global one, so
//! servers in one process (the tests) keep their counts apart. The
//! controller's metrics are described and named in
//! `youmi_controller::metrics`; `docs/operations.md` lists them all.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use youmi_controller::metrics::STORE_COMMIT_SECONDS;
use youmi_controller::MetricsRecorder;

/// Counter: HTTP responses of the API, by `status` code and `route` (the
/// route's template, such as `/api/v1/tasks/{id}`; `unmatched` when no
/// route matched).
pub const HTTP_RESPONSES_TOTAL: &str = "youmi_http_responses_total";

/// The `route` of a request that matched no route: one value, whatever the
/// path, so that scanners cannot grow the metric without bound.
const UNMATCHED_ROUTE: &str = "unmatched";

/// Upper bounds of the commit latency buckets, in seconds: commits take a
/// few milliseconds, and retries after a failure seconds.
const COMMIT_BUCKETS: [f64; 14] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets between
/// scrapes, so that they do not pile up when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One server's metrics: cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// Holds every metric of this server, the controller's included.
    recorder: Arc<PrometheusRecorder>,
}

impl Metrics {
    /// A recorder with the commit latency as a histogram of
    /// [`COMMIT_BUCKETS`], and the HTTP metric described.
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(STORE_COMMIT_SECONDS.to_owned()),
                &COMMIT_BUCKETS,
            )
            .expect("the commit buckets are not empty")
            .build_recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_counter!(
                HTTP_RESPONSES_TOTAL,
                "HTTP responses of the API, by status code and route template."
            );
        });
        Metrics {
            recorder: Arc::new(recorder),
        }
    }

    /// The recorder, for the controller's configuration.
    pub fn controller_recorder(&self) -> MetricsRecorder {
        MetricsRecorder(self.recorder.clone())
    }

    /// Every metric, in Prometheus text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    /// Counts one HTTP response.
    fn count_response(&self, status: u16, route: Option<MatchedPath>) {
        let route = route.map_or_else(|| UNMATCHED_ROUTE.to_owned(), |r| r.as_str().to_owned());
        metrics::with_local_recorder(&*self.recorder, || {
            metrics::counter!(HTTP_RESPONSES_TOTAL, "status" => status.to_string(), "route" => route)
                .increment(1);
        });
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Middleware of the API's router: counts every response by status and
/// route template.
pub async fn count_responses(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    metrics.count_response(response.status().as_u16(), route);
    response
}

/// Serves `GET /metrics` on `listener` until `shutdown` turns true, and
/// keeps the recorder's histograms folded meanwhile.
pub fn serve(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    let mut stopping = shutdown.clone();
    let upkeep = metrics.recorder.handle();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = interval.tick() => upkeep.run_upkeep(),
                _ = stopping.wait_for(|stop| *stop) => break,
            }
        }
    });
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics);
    let mut stopping = shutdown;
    tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            })
            .into_future(),
    )
}

async fn scrape(State(metrics): State<Metrics>) -> impl IntoResponse {
    ([(CONTENT_TYPE, TEXT_FORMAT)], metrics.render())
}
