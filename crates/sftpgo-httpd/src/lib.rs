//! The REST API, `/api/v1`, wire-compatible with SFTPGo 0.9 (with its defects fixed:
//! duplicate usernames are 409, read-only providers 403 for every mutation).
//!
//! Handlers only translate HTTP to calls on the shared layer ([`sftpgo_core::Core`]) and
//! back; the access log and error shape are applied once, for every route.

mod auth;
mod csrf;
mod error;
mod folders;
mod handlers;
mod listener;
mod ops;
mod scans;
mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get};
use sftpgo_core::Core;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::BasicAuth;
pub use error::ApiResponse;
pub use listener::{ApiListener, ClientInfo, tls_config};
pub use rustls;
pub use web::WebAdmin;

/// Errors setting up the API (bad auth file, certificate or key).
#[derive(Debug, thiserror::Error)]
pub enum HttpdError {
    #[error("cannot read the auth_user_file {path}: {source}")]
    AuthFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the auth_user_file {path} has no usable user:bcrypt-hash entry")]
    NoAuthEntries { path: PathBuf },
    #[error("TLS: {path}: {message}")]
    Tls { path: PathBuf, message: String },
}

/// Whether the API at `addr` should be flagged at start: reachable from other hosts (not
/// loopback) and without authentication.
pub fn exposed_without_auth(addr: &SocketAddr, auth_enabled: bool) -> bool {
    !auth_enabled && !addr.ip().is_loopback()
}

/// Version information reported by `GET /api/v1/version`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VersionInfo {
    pub version: String,
    pub build_date: String,
    pub commit_hash: String,
}

#[derive(Clone)]
pub(crate) struct AppState {
    core: Core,
    version: VersionInfo,
    /// Quota scans running now: username → start time (ms).
    scans: Arc<scans::Scans>,
    /// Folder quota scans running now: mapped path → start time (ms).
    folder_scans: Arc<scans::Scans>,
}

/// The OpenAPI 3 document of the API, served at `GET /api/v1/openapi.yaml`.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

/// Every route of the API; the router is built from this table only, so a test can check
/// it against the OpenAPI document.
fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/api/v1/version", get(handlers::version)),
        ("/api/v1/openapi.yaml", get(handlers::openapi)),
        (
            "/api/v1/user",
            get(handlers::list_users).post(handlers::add_user),
        ),
        (
            "/api/v1/user/{id}",
            get(handlers::get_user)
                .put(handlers::update_user)
                .delete(handlers::delete_user),
        ),
        (
            "/api/v1/quota_scan",
            get(handlers::list_scans).post(handlers::start_scan),
        ),
        (
            "/api/v1/folder",
            get(folders::list_folders)
                .post(folders::add_folder)
                .put(folders::update_folder)
                .delete(folders::delete_folder),
        ),
        (
            "/api/v1/folder_quota_scan",
            get(folders::list_folder_scans).post(folders::start_folder_scan),
        ),
        ("/api/v1/connection", get(handlers::list_connections)),
        (
            "/api/v1/connection/{id}",
            delete(handlers::close_connection),
        ),
        ("/api/v1/defender/hosts", get(handlers::defender_hosts)),
        (
            "/api/v1/defender/hosts/{id}",
            get(handlers::defender_host).delete(handlers::defender_unban),
        ),
        // The seed's original paths.
        ("/api/v1/sftp_connection", get(handlers::list_connections)),
        (
            "/api/v1/sftp_connection/{id}",
            delete(handlers::close_connection),
        ),
    ]
}

/// The API's routes over `core`, without authentication.
pub fn router(core: Core, version: VersionInfo) -> Router {
    router_with_auth(core, version, None)
}

/// The API's routes over `core`; with `auth`, every request needs Basic credentials.
pub fn router_with_auth(core: Core, version: VersionInfo, auth: Option<Arc<BasicAuth>>) -> Router {
    router_with_web(core, version, auth, None)
}

/// [`router_with_auth`] plus, with `web`, the web admin under its prefix (its own login
/// with the same accounts as `auth`; without `auth` it only says how to turn it on).
pub fn router_with_web(
    core: Core,
    version: VersionInfo,
    auth: Option<Arc<BasicAuth>>,
    web: Option<WebAdmin>,
) -> Router {
    let defender = core.defender().clone();
    let state = AppState {
        core,
        version,
        scans: Arc::default(),
        folder_scans: Arc::default(),
    };
    let web = web.map(|w| {
        let auth = auth.clone().map(|auth| auth::AuthState {
            auth,
            defender: defender.clone(),
        });
        web::router(state.clone(), w, auth)
    });
    let routes = routes()
        .into_iter()
        .fold(Router::new(), |r, (path, methods)| r.route(path, methods))
        // Prometheus scrapes with the same credentials as API clients.
        .route("/metrics", get(ops::metrics))
        // On the routes only: an unknown path stays 404 and an undeclared method 405.
        .route_layer(middleware::from_fn(csrf::guard))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed);
    let routes = match auth {
        Some(auth) => routes.layer(middleware::from_fn_with_state(
            auth::AuthState { auth, defender },
            auth::require_auth,
        )),
        None => routes,
    };
    // The web admin has its own login and form rules.
    let routes = match web {
        Some(web) => routes.merge(web),
        None => routes,
    };
    // Load balancers' health checks carry no credentials and learn nothing secret.
    routes
        .route("/healthz", get(ops::healthz))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// How long a client may take to send a request's headers. hyper starts the same timer
/// when a kept-alive connection waits for its next request, so it is also how long an
/// idle connection is kept.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections the API serves at once; one more is accepted and closed at once (logged),
/// so a flood of idle or slow connections cannot take the process's file descriptors.
pub const MAX_CONNECTIONS: usize = 256;

/// Serves the API on `listener` (HTTPS when `tls` is given) until `shutdown` fires; then
/// lets the requests in progress finish.
///
/// Why not `axum::serve`: it gives hyper no timer, so hyper's header read timeout never
/// runs (measured: 1,000 idle connections held for 60 s and more), and it has no
/// connection cap. This loop is axum's, with both.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::Listener as _;
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut listener = ApiListener::new(listener, tls)?;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (io, client) = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(sender = "httpd", remote_addr = %client.addr, max_connections = MAX_CONNECTIONS, "connection refused: too many API connections");
            continue;
        };
        // Each request carries its connection's address, as `into_make_service_with_connect_info` does.
        let service = tower::ServiceExt::map_request(
            router.clone().layer(axum::Extension(ConnectInfo(client))),
            |req: Request<hyper::body::Incoming>| req.map(axum::body::Body::new),
        );
        let service = hyper_util::service::TowerToHyperService::new(service);
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            // HTTP/1 only (the API is built without HTTP/2): hyper-util's auto builder waits
            // for a first byte to tell the versions apart, with no timeout.
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(io), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(sender = "httpd", remote_addr = %client.addr, error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// One JSON access-log line per request (SFTPGo 0.9's fields), with a request id taken
/// from `X-Request-Id` or made up, echoed in the response.
async fn access_log(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let client = request
        .extensions()
        .get::<ConnectInfo<ClientInfo>>()
        .map(|c| c.0);
    let remote = client.map(|c| c.addr.to_string()).unwrap_or_default();
    let scheme = if client.is_some_and(|c| c.tls) {
        "https"
    } else {
        "http"
    };
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let method = request.method().to_string();
    let proto = format!("{:?}", request.version());
    let host = request
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let uri = format!("{scheme}://{host}{}", request.uri());
    let user_agent = request
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut response = next.run(request).await;
    if let Ok(v) = request_id.parse() {
        response.headers_mut().insert("x-request-id", v);
    }
    // Content-Length is only set later by hyper; every body of this API has a known size.
    let resp_size = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| axum::body::HttpBody::size_hint(response.body()).exact())
        .unwrap_or(0);
    tracing::info!(
        sender = "httpd",
        remote_addr = %remote,
        proto = %proto,
        method = %method,
        user_agent = %user_agent,
        uri = %uri,
        resp_status = response.status().as_u16(),
        resp_size,
        elapsed_ms = start.elapsed().as_millis() as u64,
        request_id = %request_id,
        "request"
    );
    response
}

#[cfg(test)]
mod tests;
