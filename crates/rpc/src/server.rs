//! The HTTP shell around [`crate::handle`]: axum, `POST /`, limits, CORS, graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{handle, ChainRpcBackend, RpcError, RpcLimits};

/// A running RPC server. Dropping the handle also shuts the server down gracefully (the
/// shutdown signal is the handle's channel); keep it alive as long as the server should run.
#[derive(Debug)]
pub struct RpcServer {
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl RpcServer {
    /// The address the server is bound to (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the server
    /// task to end.
    pub async fn shutdown(mut self) -> io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(format!("RPC server task failed: {e}"))),
        }
    }
}

/// Binds `addr` and serves JSON-RPC on `POST /` until the returned handle is shut down or
/// dropped. Fails only if the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    backend: Arc<dyn ChainRpcBackend>,
    limits: RpcLimits,
) -> io::Result<RpcServer> {
    let (tx, rx) = oneshot::channel::<()>();
    let (local_addr, task) = serve_with_shutdown(addr, backend, limits, async move {
        let _ = rx.await; // a signal or a dropped handle both stop the server
    })
    .await?;
    Ok(RpcServer {
        local_addr,
        shutdown: Some(tx),
        task,
    })
}

/// Binds `addr` and serves JSON-RPC on `POST /` until `shutdown` completes, then finishes the
/// in-flight requests and ends the returned task. Returns the bound address.
///
/// Per request: bodies over [`RpcLimits::max_body_bytes`] get HTTP 413 with a `-32600` error;
/// beyond the token bucket ([`RpcLimits::requests_per_second`] refill, [`RpcLimits::burst`]
/// capacity, shared by all clients of this server) HTTP 429 with a `-32005` error. Every
/// response carries `Access-Control-Allow-Origin: *`, and `OPTIONS /` answers CORS preflights,
/// so browser wallets and dapps can call the server. Dispatch runs on a blocking thread since
/// backends may take locks.
pub async fn serve_with_shutdown<F>(
    addr: SocketAddr,
    backend: Arc<dyn ChainRpcBackend>,
    limits: RpcLimits,
    shutdown: F,
) -> io::Result<(SocketAddr, JoinHandle<io::Result<()>>)>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let state = AppState {
        backend,
        limits,
        bucket: Arc::new(Mutex::new(TokenBucket::new(
            limits.requests_per_second,
            limits.burst,
        ))),
    };
    let app = Router::new()
        .route("/", post(rpc).options(preflight))
        .with_state(state);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok((local_addr, task))
}

#[derive(Clone)]
struct AppState {
    backend: Arc<dyn ChainRpcBackend>,
    limits: RpcLimits,
    bucket: Arc<Mutex<TokenBucket>>,
}

/// A token bucket: `capacity` tokens, refilled at `rate` per second; a request takes one.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: u32, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            rate: f64::from(rate),
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn try_take(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true; // disabled
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn error_body(error: RpcError) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"jsonrpc": "2.0", "id": null, "error": error}))
        .unwrap_or_default()
}

async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

async fn rpc(State(state): State<AppState>, body: Body) -> Response {
    let allowed = match state.bucket.lock() {
        Ok(mut bucket) => bucket.try_take(Instant::now()),
        Err(poisoned) => poisoned.into_inner().try_take(Instant::now()),
    };
    if !allowed {
        return json_response(
            StatusCode::TOO_MANY_REQUESTS,
            error_body(RpcError::limit_exceeded("request rate limit exceeded")),
        );
    }
    let limit = state.limits.max_body_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                error_body(RpcError::invalid_request(format!(
                    "request body exceeds the limit of {limit} bytes (or could not be read)"
                ))),
            )
        }
    };
    let backend = state.backend.clone();
    let limits = state.limits;
    match tokio::task::spawn_blocking(move || handle(&*backend, &bytes, &limits)).await {
        Ok(out) => json_response(StatusCode::OK, out),
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            error_body(RpcError::internal(format!("dispatcher failed: {e}"))),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_allows_a_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut b = TokenBucket::new(10, 3);
        b.last = start;
        assert!(b.try_take(start));
        assert!(b.try_take(start));
        assert!(b.try_take(start));
        assert!(!b.try_take(start), "burst of 3 exhausted");
        assert!(
            !b.try_take(start + Duration::from_millis(50)),
            "half a token"
        );
        assert!(
            b.try_take(start + Duration::from_millis(100)),
            "one token after 0.1 s"
        );
        assert!(!b.try_take(start + Duration::from_millis(100)));
        // refill is capped at the burst size
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(b.try_take(later));
        }
        assert!(!b.try_take(later));
    }

    #[test]
    fn zero_rate_disables_the_bound() {
        let mut b = TokenBucket::new(0, 1);
        let now = Instant::now();
        for _ in 0..1000 {
            assert!(b.try_take(now));
        }
    }
}
