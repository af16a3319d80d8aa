//! The daemon's web server (axum): the status page (`/`), Prometheus
//! metrics (`/metrics`) and a health check for supervisors (`/healthz`).
//!
//! Read-only: every request opens the store's history database for reading
//! ([`crate::history::History::open_store_for_reading`]) on a blocking
//! thread, reads what it shows, and drops it; the daemon's in-memory
//! [`DaemonStatus`](crate::daemon::DaemonStatus) adds the next scheduled
//! times. With a token configured ([`AppState::token`]) every path except
//! `/healthz` needs `Authorization: Bearer TOKEN` or `?token=TOKEN`
//! (compared in constant time), else 401; nothing served ever contains the
//! token.
//!
//! The caller binds the listener (the daemon: `127.0.0.1:9184` unless
//! configured) and calls [`serve`]. This module imports
//! [`crate::daemon::status`]; `daemon` must not import `web` back (an
//! import cycle between top-level modules, refused by `tests/layering.rs`):
//! the command (`commands/daemon.rs`) starts both.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::clock::{Clock, SystemClock};
use crate::config::Secret;
use crate::daemon::status::SharedStatus;

mod auth;
mod chart;
mod html;
mod page;

/// What the web server needs: the store to read, the daemon's status, the
/// token (None: no token asked for; only sensible on a loopback address),
/// and the clock ages are measured with.
#[derive(Clone)]
pub struct AppState {
    pub store: PathBuf,
    pub status: SharedStatus,
    pub token: Option<Secret>,
    pub clock: Arc<dyn Clock>,
}

impl AppState {
    /// With the system clock.
    pub fn new(store: PathBuf, status: SharedStatus, token: Option<Secret>) -> AppState {
        AppState {
            store,
            status,
            token,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

/// How long the store's size (a walk over its files) is reused between
/// requests: Prometheus scrapes every 15-60 s, the size moves once per run.
const STORE_SIZE_TTL: Duration = Duration::from_secs(300);

/// The router's state: the [`AppState`] and the cached store size.
struct Shared {
    app: AppState,
    store_size: Mutex<Option<(Instant, u64)>>,
}

type SharedState = Arc<Shared>;

impl Shared {
    /// The store's size in bytes, walked again at most every
    /// [`STORE_SIZE_TTL`]; None when it can't be read.
    fn store_size(&self) -> Option<u64> {
        let now = Instant::now();
        if let Ok(cache) = self.store_size.lock()
            && let Some((at, bytes)) = *cache
            && now.duration_since(at) < STORE_SIZE_TTL
        {
            return Some(bytes);
        }
        let bytes = crate::metrics::store_size_bytes(&self.app.store).ok()?;
        if let Ok(mut cache) = self.store_size.lock() {
            *cache = Some((now, bytes));
        }
        Some(bytes)
    }
}

/// Serves `/`, `/metrics` and `/healthz` on `listener` until `shutdown`
/// completes; requests in flight then finish before it returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The routes, with the token check in front of every path but `/healthz`
/// (unknown paths too: without the token, nothing says what exists).
pub fn router(state: AppState) -> Router {
    let shared: SharedState = Arc::new(Shared {
        app: state,
        store_size: Mutex::new(None),
    });
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .layer(middleware::from_fn(common_headers))
        .with_state(shared)
}

/// 401 unless the request carries the configured token (or asks for
/// `/healthz`, which supervisors call without one and which says nothing
/// but `ok`).
async fn require_token(State(s): State<SharedState>, req: Request, next: Next) -> Response {
    let Some(token) = &s.app.token else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" || auth::allowed(token, req.headers(), req.uri().query()) {
        return next.run(req).await;
    }
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "a token is needed: send `Authorization: Bearer TOKEN` or add ?token=TOKEN\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"qbackup\""),
    );
    r
}

/// Every response: not cached (the page may have been asked for with
/// `?token=`), no referrer, no scripts or outside resources.
async fn common_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'",
        ),
    );
    r
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found: try / or /metrics\n").into_response()
}

/// 200 `ok` when the history database opens (or there is none yet:
/// nothing was backed up); 503 when it can't be opened.
async fn healthz(State(s): State<SharedState>) -> Response {
    let store = s.app.store.clone();
    let opened = tokio::task::spawn_blocking(move || {
        crate::history::History::open_store_for_reading(&crate::store::Store::new(store)).is_ok()
    })
    .await
    .unwrap_or(false);
    if opened {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the history database can't be opened; see the daemon's log or run `qbackup check`\n",
        )
            .into_response()
    }
}

/// The Prometheus exposition: the history's metrics and the daemon's.
async fn metrics(State(s): State<SharedState>) -> Response {
    let shared = s.clone();
    let text = tokio::task::spawn_blocking(move || {
        let app = &shared.app;
        let store_size = shared.store_size();
        let now = app.clock.now().unix_timestamp();
        let daemon = app.status.read().map(|d| d.clone()).unwrap_or_default();
        crate::metrics::exposition(&app.store, store_size, now, Some(&daemon))
    })
    .await;
    match text {
        Ok(text) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            (StatusCode::OK, headers, text).into_response()
        }
        Err(_) => server_error("the metrics could not be gathered"),
    }
}

/// The status page.
async fn status_page(State(s): State<SharedState>) -> Response {
    let shared = s.clone();
    let body =
        tokio::task::spawn_blocking(move || page::render(&shared.app, shared.store_size())).await;
    match body {
        Ok(html) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            (StatusCode::OK, headers, html).into_response()
        }
        Err(_) => server_error("the status page could not be built"),
    }
}

/// 500 with one line (errors name files, never secrets; URLs are scrubbed
/// all the same).
fn server_error(msg: &str) -> Response {
    let line = crate::redact::urls(&crate::text::one_line(msg));
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{line}\n")).into_response()
}
