//! The `/metrics` endpoint: a tiny_http server on one thread of its own.
//!
//! `GET /metrics` (and `HEAD`) answers `200` with the Prometheus text format 0.0.4; other paths `404`,
//! other methods `405`. Scrapes are rare (every 15–60 s) and small, so one thread serving requests in turn
//! is enough and never touches the dataflow workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::{Metrics, MetricsError};

/// The `Content-Type` of the Prometheus text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running `/metrics` server. Dropping it (or [`MetricsServer::shutdown`]) stops accepting, finishes
/// the request in progress and joins the thread.
pub struct MetricsServer {
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MetricsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl MetricsServer {
    /// Binds `listen` and serves `metrics` from a thread named `millionx-metrics`.
    ///
    /// Errors: [`MetricsError::Bind`] naming the address when it cannot be bound (in use, not local,
    /// permission), [`MetricsError::Thread`] when the thread cannot be spawned.
    pub fn start(listen: SocketAddr, metrics: Metrics) -> Result<MetricsServer, MetricsError> {
        let server =
            Server::http(listen).map_err(|e| MetricsError::Bind { addr: listen.to_string(), reason: e.to_string() })?;
        let addr = server.server_addr().to_ip().unwrap_or(listen);
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("millionx-metrics".to_owned())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    respond(request, &metrics);
                }
            })
            .map_err(|e| MetricsError::Thread(e.to_string()))?;
        Ok(MetricsServer { server, addr, thread: Some(thread) })
    }

    /// The bound address (the real port when `listen` had port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and joins its thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            // A panic in the serving thread has already been reported on stderr; nothing to add here.
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A header from constant ASCII text (never `None` for the constants used here).
fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn respond(request: Request, metrics: &Metrics) {
    let path = request.url().split('?').next().unwrap_or("");
    let get_or_head = matches!(request.method(), Method::Get | Method::Head);
    let response = match (path, get_or_head) {
        ("/metrics", true) => match metrics.render() {
            Ok(text) => {
                let mut r = Response::from_string(text);
                if let Some(h) = header("Content-Type", CONTENT_TYPE) {
                    r.add_header(h);
                }
                r
            }
            Err(e) => Response::from_string(format!("metrics encoding failed: {e}\n")).with_status_code(500),
        },
        ("/metrics", false) => {
            let mut r = Response::from_string("only GET and HEAD\n").with_status_code(405);
            if let Some(h) = header("Allow", "GET, HEAD") {
                r.add_header(h);
            }
            r
        }
        _ => Response::from_string("not found: metrics are served on /metrics\n").with_status_code(404),
    };
    // A scraper that hung up mid-response is its own problem; the next scrape gets a fresh answer.
    let _ = request.respond(response);
}
