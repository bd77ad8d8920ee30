//! The `/metrics` endpoint: plain HTTP/1.1 (hyper), for a Prometheus
//! server to scrape (the `metrics` feature).
//!
//! `GET /metrics` answers the node's metrics in the OpenMetrics text
//! format ([`super::exposition`]); any other path is 404, any other method
//! 405. What a client can cost the node is bounded: at most
//! [`MAX_CLIENTS`] connections at once (more are closed at once), request
//! headers within [`HEADER_TIMEOUT`], a connection within
//! [`CONNECTION_TIMEOUT`]; hyper parses the requests. The endpoint has no
//! authentication: bind it to a loopback or management address.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::debug;

use super::conn::ConnEnv;
use super::exposition;

/// Scrape connections served at once.
pub(crate) const MAX_CLIENTS: usize = 16;
/// Time for a request's headers to arrive.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a scrape connection stays open.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(60);

/// Serves `/metrics` on `listener` until the node stops.
pub(crate) async fn serve(listener: TcpListener, env: Arc<ConnEnv>) {
    let mut stop = env.stop.clone();
    let mut clients = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        while clients.try_join_next().is_some() {}
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors, typically: wait a little.
                debug!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if clients.len() >= MAX_CLIENTS {
            drop(tcp);
            continue;
        }
        let env = Arc::clone(&env);
        clients.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let env = Arc::clone(&env);
                async move { Ok::<_, Infallible>(respond(&env, &req)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
        });
    }
}

fn respond(env: &ConnEnv, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, content_type: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "not found: the metrics are at /metrics\n".into(),
            "text/plain",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET\n".into(),
            "text/plain",
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    reply(
        StatusCode::OK,
        exposition::render(env),
        exposition::CONTENT_TYPE,
    )
}
