//! The API cannot be driven by a web page: a page in the administrator's browser can send
//! "simple" cross-site requests (a form POST with `text/plain`, or a `fetch` without
//! custom headers) without asking the server first, and the browser adds any Basic
//! credentials it holds. Two rules close that, for every route (a forged request without
//! credentials is already a 401; one the browser adds credentials to meets these):
//!
//! - a request that carries a body (POST, PUT, or any declared body) must say
//!   `Content-Type: application/json` (415 otherwise): a page cannot send that type
//!   cross-site without a CORS preflight, which this API never grants;
//! - a request with an `Origin` header must come from the API's own origin (403
//!   otherwise); browsers send `Origin` on every cross-site non-GET request, and scripts
//!   (curl, the CLI) send none.

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiResponse;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A body without `Content-Type: application/json`.
    NotJson(String),
    /// An `Origin` that is not the API's own.
    ForeignOrigin(String),
}

/// The check itself, pure so that it can be tested on its own.
pub(crate) fn check(method: &Method, headers: &axum::http::HeaderMap) -> Result<(), Refusal> {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !same_authority(&origin, host) {
            return Err(Refusal::ForeignOrigin(origin));
        }
    }
    let declares_body = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|l| l.as_bytes() != b"0")
        || headers.contains_key(header::TRANSFER_ENCODING);
    let needs_body = matches!(*method, Method::POST | Method::PUT);
    if needs_body || declares_body {
        let ctype = headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        if !is_json(&ctype) {
            return Err(Refusal::NotJson(ctype));
        }
    }
    Ok(())
}

/// `application/json`, optionally with parameters (`; charset=utf-8`), any case.
fn is_json(ctype: &str) -> bool {
    let essence = ctype.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request was sent to. The
/// scheme is not compared: behind a TLS-terminating proxy the API sees plain HTTP for an
/// `https://` page of its own. Default ports are made explicit on both sides.
pub(crate) fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        // "null" (sandboxed frames, file: pages) and anything malformed.
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    let with_port = |a: &str| -> String {
        let a = a.trim().to_ascii_lowercase();
        // An IPv6 literal is bracketed; a port follows the last ':' after the bracket.
        let has_port = match a.rfind(']') {
            Some(close) => a[close..].contains(':'),
            None => a.contains(':'),
        };
        if has_port {
            a
        } else {
            format!("{a}:{default_port}")
        }
    };
    !host.is_empty() && !authority.contains('/') && with_port(authority) == with_port(host)
}

/// Middleware applying [`check`] to every request.
pub(crate) async fn guard(request: Request, next: Next) -> Response {
    match check(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            let (status, message) = match &refusal {
                Refusal::NotJson(ctype) => (
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "the request body must be sent with Content-Type: application/json (got {ctype:?})"
                    ),
                ),
                Refusal::ForeignOrigin(origin) => (
                    StatusCode::FORBIDDEN,
                    format!(
                        "cross-origin request refused: Origin {origin:?} is not this API's origin"
                    ),
                ),
            };
            tracing::warn!(sender = "httpd", method = %request.method(), uri = %request.uri(), reason = %message, "request refused");
            ApiResponse::new(status, "", message).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bodies_must_be_json() {
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        assert_eq!(check(&Method::POST, &json), Ok(()));
        assert_eq!(check(&Method::PUT, &json), Ok(()));
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            let h = headers(&[("content-type", bad)]);
            assert!(
                matches!(check(&Method::POST, &h), Err(Refusal::NotJson(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            check(&Method::POST, &HeaderMap::new()),
            Err(Refusal::NotJson(_))
        ));
        // GET and DELETE without a body need no type; with one, they do.
        assert_eq!(check(&Method::GET, &HeaderMap::new()), Ok(()));
        assert_eq!(
            check(&Method::DELETE, &headers(&[("content-length", "0")])),
            Ok(())
        );
        assert!(check(&Method::DELETE, &headers(&[("content-length", "5")])).is_err());
    }

    #[test]
    fn origins_must_be_our_own() {
        let json = ("content-type", "application/json");
        let ok = |origin: &str, host: &str| {
            check(
                &Method::POST,
                &headers(&[json, ("origin", origin), ("host", host)]),
            )
            .is_ok()
        };
        assert!(ok("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(ok("https://admin.example", "admin.example"));
        assert!(ok("http://admin.example", "admin.example:80"));
        assert!(ok("https://ADMIN.example:443", "admin.example"));
        assert!(ok("http://[::1]:8080", "[::1]:8080"));
        assert!(!ok("http://evil.example", "127.0.0.1:8080"));
        assert!(!ok("http://127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!ok("http://[::1]", "[::1]:8080"));
        assert!(!ok("null", "127.0.0.1:8080"));
        assert!(!ok("ftp://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!ok("http://127.0.0.1:8080/x", "127.0.0.1:8080"));
        assert!(!ok("http://127.0.0.1:8080", ""));
        // Also on reads: a foreign page learns nothing, and gets told.
        let h = headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080"),
        ]);
        assert!(matches!(
            check(&Method::GET, &h),
            Err(Refusal::ForeignOrigin(_))
        ));
        // No Origin at all (curl, the CLI, schemathesis): fine.
        assert!(check(&Method::POST, &headers(&[json])).is_ok());
    }
}
