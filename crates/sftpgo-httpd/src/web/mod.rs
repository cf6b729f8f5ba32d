//! The web admin: server-rendered HTML pages for operators, on the API's port under a
//! path prefix (`/web`). Every page calls the same shared-layer functions as the REST
//! handlers (the provider validates; its errors are shown next to the field they name).
//!
//! Security: operators log in with the accounts of `httpd.auth_user_file` (the API's
//! bcrypt verifier; failed logins count toward the defender like failed Basic auth); a
//! session cookie (256-bit random id, HttpOnly, SameSite=Strict, Secure under TLS,
//! Path = the prefix) names a session kept in this process with an idle expiry; every
//! POST needs the session's CSRF token (a hidden field) and, when the browser sends an
//! `Origin`, our own. Without an auth file the prefix only says how to turn it on.

mod form;
mod pages;
mod session;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use maud::Markup;
use sftpgo_provider::{Folder, FolderQuery, ProviderError, SortOrder, User, UserQuery};

use crate::AppState;
use crate::auth::AuthState;
use form::{ADD_FOLDER_ROW, FolderRow, Form, UserValues};
use pages::Chrome;
use session::{Lookup, Session, Sessions};

/// How the web admin is served (from `httpd.web_admin`).
#[derive(Debug, Clone)]
pub struct WebAdmin {
    /// `/web`: starts with `/`, no trailing `/`.
    pub path_prefix: String,
    /// A session ends after this long without a request.
    pub session_idle_expiry: Duration,
    /// Whether the cookie is marked `Secure` (the API is served over TLS).
    pub secure_cookie: bool,
}

/// Largest form body accepted (public keys included).
const MAX_FORM_BYTES: usize = 256 * 1024;
/// Users per page of the list.
const PAGE_SIZE: u32 = 25;
const COOKIE: &str = "sftpgo_web";
/// How long the status page waits for the data provider.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct WebState {
    app: AppState,
    auth: AuthState,
    sessions: Arc<Sessions>,
    prefix: Arc<str>,
    secure: bool,
}

/// The web admin's routes, to merge into the API's router (outside its Basic auth and
/// its JSON-only rule). Without `auth`, every path under the prefix says how to turn it
/// on.
pub(crate) fn router(app: AppState, cfg: WebAdmin, auth: Option<AuthState>) -> Router<AppState> {
    let p = cfg.path_prefix.trim_end_matches('/').to_string();
    let Some(auth) = auth else {
        let prefix: Arc<str> = p.clone().into();
        let off = move || {
            let prefix = prefix.clone();
            async move { (StatusCode::NOT_FOUND, html(pages::disabled(&prefix))) }
        };
        return Router::new()
            .route(&p, any(off.clone()))
            .route(&format!("{p}/"), any(off.clone()))
            .route(&format!("{p}/{{*rest}}"), any(off))
            .layer(middleware::from_fn_with_state(
                Arc::<str>::from(p.as_str()),
                security_headers,
            ));
    };
    let state = WebState {
        app,
        auth,
        sessions: Arc::new(Sessions::new(cfg.session_idle_expiry)),
        prefix: p.clone().into(),
        secure: cfg.secure_cookie,
    };
    Router::new()
        .route(&p, get(home))
        .route(&format!("{p}/"), get(home))
        .route(&format!("{p}/static/style.css"), get(style))
        .route(&format!("{p}/login"), get(login_page).post(login))
        .route(&format!("{p}/logout"), post(logout))
        .route(&format!("{p}/users"), get(users))
        .route(&format!("{p}/users/new"), get(new_user).post(add_user))
        .route(
            &format!("{p}/users/{{id}}"),
            get(edit_user).post(update_user),
        )
        .route(
            &format!("{p}/users/{{id}}/delete"),
            get(confirm_delete).post(delete_user),
        )
        .route(&format!("{p}/folders"), get(folders))
        .route(
            &format!("{p}/folders/new"),
            get(new_folder).post(add_folder),
        )
        .route(
            &format!("{p}/folders/edit"),
            get(edit_folder).post(update_folder),
        )
        .route(
            &format!("{p}/folders/delete"),
            get(confirm_delete_folder).post(delete_folder),
        )
        .route(&format!("{p}/folders/scan"), post(start_folder_scan))
        .route(&format!("{p}/connections"), get(connections))
        .route(
            &format!("{p}/connections/{{id}}/close"),
            post(close_connection),
        )
        .route(&format!("{p}/quota-scans"), get(scans).post(start_scan))
        .route(&format!("{p}/defender"), get(defender))
        .route(&format!("{p}/defender/{{ip}}/unban"), post(unban))
        .route(&format!("{p}/status"), get(status))
        .route(&format!("{p}/{{*rest}}"), any(not_found))
        .layer(middleware::from_fn_with_state(state.clone(), refuse_banned))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn_with_state(
            state.prefix.clone(),
            security_headers,
        ))
        .with_state(state)
}

/// No framing, no foreign scripts or styles, nothing cached; axum's own refusals (a body
/// too large, a method a page does not take), which are not HTML, shown as a page.
async fn security_headers(
    State(prefix): State<Arc<str>>,
    request: Request,
    next: Next,
) -> Response {
    let mut r = next.run(request).await;
    let ctype = r
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let status = r.status();
    if (status.is_client_error() || status.is_server_error()) && !ctype.starts_with(b"text/html") {
        let text = if ctype.starts_with(b"text/plain") {
            let body = std::mem::take(r.body_mut());
            let bytes = axum::body::to_bytes(body, 64 * 1024)
                .await
                .unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            String::new()
        };
        let text = match (text.is_empty(), status.canonical_reason()) {
            (false, _) => text,
            (true, Some(reason)) => format!("{} {reason}", status.as_u16()),
            (true, None) => status.as_u16().to_string(),
        };
        r = (
            status,
            html(pages::message(&prefix, "Request refused", &text)),
        )
            .into_response();
    }
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A client the defender refuses (banned, blocklisted) gets no page and cannot log in, as
/// the API answers it 403 before looking at credentials.
async fn refuse_banned(State(ws): State<WebState>, request: Request, next: Next) -> Response {
    if let Some(addr) = crate::auth::client_addr(&request)
        && let Err(refusal) = ws.auth.defender.check(addr.ip()).await
    {
        if let Some(suppressed) = ws.auth.defender.may_log_refusal() {
            tracing::info!(sender = "httpd", remote_addr = %addr, reason = %refusal, suppressed_since_last = suppressed, "web admin request refused by the defender");
        }
        return error_page(
            &ws,
            StatusCode::FORBIDDEN,
            "Access refused",
            &refusal.to_string(),
        );
    }
    next.run(request).await
}

fn html(m: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
        .into_response()
}

fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

fn error_page(ws: &WebState, status: StatusCode, title: &str, text: &str) -> Response {
    (status, html(pages::message(&ws.prefix, title, text))).into_response()
}

/// The session cookie's value, if the request has one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// A logged-in request: the cookie's id and its session.
struct Authed {
    id: String,
    session: Session,
}

impl WebState {
    fn chrome<'a>(&'a self, a: &'a Authed) -> Chrome<'a> {
        Chrome {
            prefix: &self.prefix,
            session: &a.session,
        }
    }

    fn login_location(&self, expired: bool) -> String {
        if expired {
            format!("{}/login?expired=1", self.prefix)
        } else {
            format!("{}/login", self.prefix)
        }
    }

    /// The session of the request, or a redirect to the login page.
    fn authed(&self, headers: &HeaderMap) -> Result<Authed, Box<Response>> {
        let Some(id) = cookie(headers) else {
            return Err(Box::new(see_other(&self.login_location(false))));
        };
        match self.sessions.touch(&id) {
            Lookup::Active(session) => Ok(Authed { id, session }),
            Lookup::Expired => Err(Box::new(see_other(&self.login_location(true)))),
            Lookup::Unknown => Err(Box::new(see_other(&self.login_location(false)))),
        }
    }

    /// A POST of a logged-in operator: a form body, our own `Origin` if any, the
    /// session, and its CSRF token.
    fn posted(&self, headers: &HeaderMap, body: &Bytes) -> Result<(Authed, Form), Box<Response>> {
        self.check_form_request(headers)?;
        let authed = self.authed(headers)?;
        let form = Form::parse(body);
        if !authed.session.csrf_matches(form.get("csrf_token")) {
            tracing::warn!(sender = "httpd", username = %authed.session.username, "web admin: form refused, CSRF token missing or wrong");
            return Err(Box::new(error_page(
                self,
                StatusCode::FORBIDDEN,
                "Form refused",
                "The form's security token is missing or does not match your session. Reload the page and submit the form again.",
            )));
        }
        Ok((authed, form))
    }

    /// Form bodies only, and no cross-site `Origin`.
    fn check_form_request(&self, headers: &HeaderMap) -> Result<(), Box<Response>> {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = String::from_utf8_lossy(origin.as_bytes());
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !crate::csrf::same_authority(&origin, host) {
                return Err(Box::new(error_page(
                    self,
                    StatusCode::FORBIDDEN,
                    "Form refused",
                    "The form was sent from another site.",
                )));
            }
        }
        let ctype = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ctype.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            return Err(Box::new(error_page(
                self,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Form refused",
                "Forms must be sent as application/x-www-form-urlencoded.",
            )));
        }
        Ok(())
    }

    /// Leaves `message` for the next page and redirects to `path` (under the prefix).
    fn done(&self, a: &Authed, path: &str, message: impl Into<String>) -> Response {
        self.sessions.set_flash(&a.id, message);
        see_other(&format!("{}{path}", self.prefix))
    }

    fn cookie_header(&self, value: &str, max_age_zero: bool) -> HeaderValue {
        let mut c = format!(
            "{COOKIE}={value}; Path={}; HttpOnly; SameSite=Strict",
            self.prefix
        );
        if self.secure {
            c.push_str("; Secure");
        }
        if max_age_zero {
            c.push_str("; Max-Age=0");
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

macro_rules! try_page {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(response) => return *response,
        }
    };
}

/// The HTTP status of a provider refusal shown on a form.
fn status_of(e: &ProviderError) -> StatusCode {
    match e {
        ProviderError::NotFound(_) => StatusCode::NOT_FOUND,
        ProviderError::AlreadyExists(_) | ProviderError::FolderExists(_) => StatusCode::CONFLICT,
        ProviderError::Validation(_) | ProviderError::InvalidField { .. } => {
            StatusCode::BAD_REQUEST
        }
        ProviderError::ReadOnly => StatusCode::FORBIDDEN,
        _ => {
            tracing::warn!(sender = "httpd", error = %e, "web admin: data provider error");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

async fn home(State(ws): State<WebState>) -> Response {
    see_other(&format!("{}/users", ws.prefix))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        pages::STYLE,
    )
        .into_response()
}

async fn not_found(State(ws): State<WebState>) -> Response {
    error_page(
        &ws,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page.",
    )
}

#[derive(serde::Deserialize)]
struct LoginQuery {
    expired: Option<String>,
}

async fn login_page(
    State(ws): State<WebState>,
    headers: HeaderMap,
    q: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    if let Some(id) = cookie(&headers)
        && matches!(ws.sessions.touch(&id), Lookup::Active(_))
    {
        return see_other(&format!("{}/users", ws.prefix));
    }
    let expired = q.is_ok_and(|Query(q)| q.expired.is_some());
    let notice = expired.then_some("Your session expired: log in again.");
    html(pages::login(&ws.prefix, None, notice))
}

/// Checks the credentials against `httpd.auth_user_file` (the API's verifier, bcrypt on
/// the blocking pool); a banned client is refused first, a failure is scored.
async fn login(State(ws): State<WebState>, request: Request) -> Response {
    let addr = crate::auth::client_addr(&request);
    let (parts, body) = request.into_parts();
    try_page!(ws.check_form_request(&parts.headers));
    let Ok(body) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return error_page(
            &ws,
            StatusCode::PAYLOAD_TOO_LARGE,
            "Form refused",
            "The form is too large.",
        );
    };
    let form = Form::parse(&body);
    let (username, password) = (form.get("username"), form.get("password"));
    if !username.is_empty() && ws.auth.auth.verify(username, password).await {
        let id = ws.sessions.create(username);
        tracing::info!(sender = "httpd", remote_addr = %addr.map(|a| a.to_string()).unwrap_or_default(), username = %username, "web admin login");
        let mut r = see_other(&format!("{}/users", ws.prefix));
        r.headers_mut()
            .insert(header::SET_COOKIE, ws.cookie_header(&id, false));
        return r;
    }
    tracing::warn!(
        sender = "httpd",
        remote_addr = %addr.map(|a| a.to_string()).unwrap_or_default(),
        client_ip = %addr.map(|a| a.ip().to_string()).unwrap_or_default(),
        username = %username,
        "web admin authentication failed"
    );
    if let Some(addr) = addr {
        crate::auth::report_failure(&ws.auth, addr, username).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        html(pages::login(
            &ws.prefix,
            Some("Invalid username or password."),
            None,
        )),
    )
        .into_response()
}

async fn logout(State(ws): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, _) = try_page!(ws.posted(&headers, &body));
    ws.sessions.remove(&a.id);
    tracing::info!(sender = "httpd", username = %a.session.username, "web admin logout");
    let mut r = see_other(&ws.login_location(false));
    r.headers_mut()
        .insert(header::SET_COOKIE, ws.cookie_header("", true));
    r
}

#[derive(serde::Deserialize, Default)]
struct UsersQuery {
    username: Option<String>,
    offset: Option<u32>,
}

async fn users(
    State(ws): State<WebState>,
    headers: HeaderMap,
    q: Result<Query<UsersQuery>, QueryRejection>,
) -> Response {
    let a = try_page!(ws.authed(&headers));
    // A hand-made query that does not parse shows the first page.
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let search = q.username.unwrap_or_default().trim().to_string();
    let offset = q.offset.unwrap_or(0);
    let query = UserQuery {
        limit: PAGE_SIZE + 1,
        offset,
        order: SortOrder::Asc,
        username: Some(search.clone()).filter(|u| !u.is_empty()),
    };
    ws.app.core.quota().write_now().await;
    let mut list = match ws.app.core.provider().list_users(&query).await {
        Ok(l) => l,
        Err(e) => return error_page(&ws, status_of(&e), "Users", &e.to_string()),
    };
    let more = list.len() > PAGE_SIZE as usize;
    list.truncate(PAGE_SIZE as usize);
    html(pages::users(
        &ws.chrome(&a),
        &pages::UserList {
            users: &list,
            search: &search,
            offset,
            page_size: PAGE_SIZE,
            more,
        },
    ))
}

async fn new_user(State(ws): State<WebState>, headers: HeaderMap) -> Response {
    let a = try_page!(ws.authed(&headers));
    let mut values = UserValues::of_user(&User::default());
    values.permissions = vec!["*".into()];
    let paths = folder_paths(&ws).await;
    html(pages::user_form(&ws.chrome(&a), &values, None, &paths))
}

/// The mapped paths of the existing folders (offered in the user form's rows).
async fn folder_paths(ws: &WebState) -> Vec<String> {
    let query = FolderQuery {
        limit: 500,
        ..FolderQuery::default()
    };
    match ws.app.core.provider().list_folders(&query).await {
        Ok(list) => list.into_iter().map(|f| f.mapped_path).collect(),
        Err(e) => {
            tracing::warn!(sender = "httpd", error = %e, "web admin: folders not listed");
            Vec::new()
        }
    }
}

/// The user form shown again with what was typed: with one more empty folder row
/// ("add another"), or with the errors.
async fn user_form_again(
    ws: &WebState,
    a: &Authed,
    status: StatusCode,
    mut values: UserValues,
    stored: Option<&User>,
) -> Response {
    let paths = folder_paths(ws).await;
    if status == StatusCode::OK {
        values.folders.push(FolderRow::default());
    }
    (
        status,
        html(pages::user_form(&ws.chrome(a), &values, stored, &paths)),
    )
        .into_response()
}

async fn add_user(State(ws): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, form) = try_page!(ws.posted(&headers, &body));
    if form.has(ADD_FOLDER_ROW) {
        let values = UserValues::of_form(&form);
        return user_form_again(&ws, &a, StatusCode::OK, values, None).await;
    }
    let user = match form::apply_user_form(&form, User::default()) {
        Ok(u) => u,
        Err(values) => {
            return user_form_again(&ws, &a, StatusCode::BAD_REQUEST, values, None).await;
        }
    };
    match ws.app.core.provider().add_user(user).await {
        Ok(stored) => {
            tracing::info!(sender = "httpd", admin = %a.session.username, username = %stored.username, "web admin: user added");
            ws.done(
                &a,
                &format!("/users/{}", stored.id),
                format!("User {} added.", stored.username),
            )
        }
        Err(e) => {
            let mut values = UserValues::of_form(&form);
            values.add_provider_error(&e);
            user_form_again(&ws, &a, status_of(&e), values, None).await
        }
    }
}

/// The user of a `{id}` path segment, or the page saying why not.
async fn stored_user(ws: &WebState, id: &str) -> Result<User, Box<Response>> {
    let not_found = || {
        error_page(
            ws,
            StatusCode::NOT_FOUND,
            "No such user",
            "This user does not exist (any more).",
        )
    };
    let Ok(id) = id.parse::<i64>() else {
        return Err(Box::new(not_found()));
    };
    ws.app.core.quota().write_now().await;
    match ws.app.core.provider().user_by_id(id).await {
        Ok(u) => Ok(u),
        Err(ProviderError::NotFound(_)) => Err(Box::new(not_found())),
        Err(e) => Err(Box::new(error_page(
            ws,
            status_of(&e),
            "User",
            &e.to_string(),
        ))),
    }
}

async fn edit_user(
    State(ws): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = try_page!(ws.authed(&headers));
    let user = try_page!(stored_user(&ws, &id).await);
    let paths = folder_paths(&ws).await;
    html(pages::user_form(
        &ws.chrome(&a),
        &UserValues::of_user(&user),
        Some(&user),
        &paths,
    ))
}

/// The REST PUT's semantics for a whole form: the stored user with the form's values;
/// an empty password keeps the stored one, an empty S3 secret is kept by the provider's
/// rule.
async fn update_user(
    State(ws): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (a, form) = try_page!(ws.posted(&headers, &body));
    let stored = try_page!(stored_user(&ws, &id).await);
    if form.has(ADD_FOLDER_ROW) {
        let values = UserValues::of_form(&form);
        return user_form_again(&ws, &a, StatusCode::OK, values, Some(&stored)).await;
    }
    let mut base = stored.clone();
    base.filesystem.s3config.access_secret = Default::default();
    let user = match form::apply_user_form(&form, base) {
        Ok(u) => u,
        Err(values) => {
            return user_form_again(&ws, &a, StatusCode::BAD_REQUEST, values, Some(&stored)).await;
        }
    };
    let username = user.username.clone();
    match ws.app.core.provider().update_user(user).await {
        Ok(()) => {
            tracing::info!(sender = "httpd", admin = %a.session.username, username = %username, "web admin: user updated");
            ws.done(
                &a,
                &format!("/users/{}", stored.id),
                format!("User {username} saved."),
            )
        }
        Err(e) => {
            let mut values = UserValues::of_form(&form);
            values.add_provider_error(&e);
            user_form_again(&ws, &a, status_of(&e), values, Some(&stored)).await
        }
    }
}

async fn confirm_delete(
    State(ws): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let a = try_page!(ws.authed(&headers));
    let user = try_page!(stored_user(&ws, &id).await);
    html(pages::confirm_delete(&ws.chrome(&a), &user))
}

async fn delete_user(
    State(ws): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (a, _) = try_page!(ws.posted(&headers, &body));
    let user = try_page!(stored_user(&ws, &id).await);
    match ws.app.core.provider().delete_user(user.id).await {
        Ok(()) => {
            tracing::info!(sender = "httpd", admin = %a.session.username, username = %user.username, "web admin: user deleted");
            ws.done(&a, "/users", format!("User {} deleted.", user.username))
        }
        Err(e) => error_page(&ws, status_of(&e), "User not deleted", &e.to_string()),
    }
}

#[derive(serde::Deserialize, Default)]
struct FoldersQuery {
    offset: Option<u32>,
}

async fn folders(
    State(ws): State<WebState>,
    headers: HeaderMap,
    q: Result<Query<FoldersQuery>, QueryRejection>,
) -> Response {
    let a = try_page!(ws.authed(&headers));
    let offset = q.map(|Query(q)| q).unwrap_or_default().offset.unwrap_or(0);
    let query = FolderQuery {
        limit: PAGE_SIZE + 1,
        offset,
        order: SortOrder::Asc,
        mapped_path: None,
    };
    ws.app.core.quota().write_now().await;
    let mut list = match ws.app.core.provider().list_folders(&query).await {
        Ok(l) => l,
        Err(e) => return error_page(&ws, status_of(&e), "Folders", &e.to_string()),
    };
    let more = list.len() > PAGE_SIZE as usize;
    list.truncate(PAGE_SIZE as usize);
    html(pages::folders(
        &ws.chrome(&a),
        &pages::FolderList {
            folders: &list,
            offset,
            page_size: PAGE_SIZE,
            more,
            scanning: &running_folder_scans(&ws),
        },
    ))
}

async fn new_folder(State(ws): State<WebState>, headers: HeaderMap) -> Response {
    let a = try_page!(ws.authed(&headers));
    html(pages::folder_form(
        &ws.chrome(&a),
        &UserValues::of_folder(&Folder::default()),
        None,
    ))
}

async fn add_folder(State(ws): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, form) = try_page!(ws.posted(&headers, &body));
    let folder = match form::apply_folder_form(&form, Folder::default(), true) {
        Ok(f) => f,
        Err(values) => {
            return (
                StatusCode::BAD_REQUEST,
                html(pages::folder_form(&ws.chrome(&a), &values, None)),
            )
                .into_response();
        }
    };
    match ws.app.core.provider().add_folder(folder).await {
        Ok(stored) => {
            tracing::info!(sender = "httpd", admin = %a.session.username, mapped_path = %stored.mapped_path, "web admin: folder added");
            ws.done(
                &a,
                "/folders",
                format!("Folder {} added.", stored.mapped_path),
            )
        }
        Err(e) => {
            let mut values = UserValues::of_folder_form(&form);
            values.add_provider_error(&e);
            (
                status_of(&e),
                html(pages::folder_form(&ws.chrome(&a), &values, None)),
            )
                .into_response()
        }
    }
}

#[derive(serde::Deserialize, Default)]
struct FolderPathQuery {
    mapped_path: Option<String>,
}

/// The folder (with the users mapping it) named by the `mapped_path` query parameter,
/// or the page saying why not.
async fn stored_folder(
    ws: &WebState,
    q: Result<Query<FolderPathQuery>, QueryRejection>,
) -> Result<Folder, Box<Response>> {
    let not_found = || {
        Box::new(error_page(
            ws,
            StatusCode::NOT_FOUND,
            "No such folder",
            "This folder does not exist (any more).",
        ))
    };
    let Some(path) = q
        .ok()
        .and_then(|Query(q)| q.mapped_path)
        .filter(|p| !p.is_empty())
    else {
        return Err(not_found());
    };
    ws.app.core.quota().write_now().await;
    let query = FolderQuery {
        limit: 1,
        mapped_path: Some(path.clone()),
        ..FolderQuery::default()
    };
    match ws.app.core.provider().list_folders(&query).await {
        Ok(list) => list
            .into_iter()
            .find(|f| f.mapped_path == path)
            .ok_or_else(not_found),
        Err(e) => Err(Box::new(error_page(
            ws,
            status_of(&e),
            "Folder",
            &e.to_string(),
        ))),
    }
}

async fn edit_folder(
    State(ws): State<WebState>,
    headers: HeaderMap,
    q: Result<Query<FolderPathQuery>, QueryRejection>,
) -> Response {
    let a = try_page!(ws.authed(&headers));
    let folder = try_page!(stored_folder(&ws, q).await);
    html(pages::folder_form(
        &ws.chrome(&a),
        &UserValues::of_folder(&folder),
        Some(&folder),
    ))
}

/// The REST PUT's semantics: the stored folder with the form's storage; an empty S3
/// secret is kept by the provider's rule.
async fn update_folder(
    State(ws): State<WebState>,
    headers: HeaderMap,
    q: Result<Query<FolderPathQuery>, QueryRejection>,
    body: Bytes,
) -> Response {
    let (a, form) = try_page!(ws.posted(&headers, &body));
    let stored = try_page!(stored_folder(&ws, q).await);
    let mut base = stored.clone();
    base.filesystem.s3config.access_secret = Default::default();
    let folder = match form::apply_folder_form(&form, base, false) {
        Ok(f) => f,
        Err(values) => {
            return (
                StatusCode::BAD_REQUEST,
                html(pages::folder_form(&ws.chrome(&a), &values, Some(&stored))),
            )
                .into_response();
        }
    };
    let path = folder.mapped_path.clone();
    match ws.app.core.provider().update_folder(folder).await {
        Ok(()) => {
            tracing::info!(sender = "httpd", admin = %a.session.username, mapped_path = %path, "web admin: folder updated");
            let link = pages::folder_link("", "edit", &path);
            ws.done(&a, &link, format!("Folder {path} saved."))
        }
        Err(e) => {
            let mut values = UserValues::of_folder_form(&form);
            values.text.insert("mapped_path".into(), path);
            values.add_provider_error(&e);
            (
                status_of(&e),
                html(pages::folder_form(&ws.chrome(&a), &values, Some(&stored))),
            )
                .into_response()
        }
    }
}

async fn confirm_delete_folder(
    State(ws): State<WebState>,
    headers: HeaderMap,
    q: Result<Query<FolderPathQuery>, QueryRejection>,
) -> Response {
    let a = try_page!(ws.authed(&headers));
    let folder = try_page!(stored_folder(&ws, q).await);
    html(pages::confirm_delete_folder(&ws.chrome(&a), &folder))
}

async fn delete_folder(
    State(ws): State<WebState>,
    headers: HeaderMap,
    q: Result<Query<FolderPathQuery>, QueryRejection>,
    body: Bytes,
) -> Response {
    let (a, _) = try_page!(ws.posted(&headers, &body));
    let folder = try_page!(stored_folder(&ws, q).await);
    match ws
        .app
        .core
        .provider()
        .delete_folder(&folder.mapped_path)
        .await
    {
        Ok(()) => {
            tracing::info!(sender = "httpd", admin = %a.session.username, mapped_path = %folder.mapped_path, "web admin: folder deleted");
            ws.done(
                &a,
                "/folders",
                format!("Folder {} deleted.", folder.mapped_path),
            )
        }
        Err(e) => error_page(&ws, status_of(&e), "Folder not deleted", &e.to_string()),
    }
}

/// Starts a folder scan through the API's own [`crate::folders::begin_folder_scan`].
async fn start_folder_scan(
    State(ws): State<WebState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (a, form) = try_page!(ws.posted(&headers, &body));
    let path = form.get("mapped_path").trim();
    let message = match ws.app.core.provider().folder_by_path(path).await {
        Ok(folder) => {
            let name = folder.mapped_path.clone();
            if crate::folders::begin_folder_scan(&ws.app, folder) {
                tracing::info!(sender = "httpd", admin = %a.session.username, mapped_path = %name, "web admin: folder quota scan started");
                format!("Quota scan of folder {name} started.")
            } else {
                format!("A quota scan of folder {name} is already running.")
            }
        }
        Err(ProviderError::NotFound(_)) => format!("There is no folder {path:?}."),
        Err(e) => {
            tracing::warn!(sender = "httpd", error = %e, "web admin: folder quota scan not started");
            format!("The folder quota scan was not started: {e}")
        }
    };
    ws.done(&a, "/folders", message)
}

#[derive(serde::Deserialize, Default)]
struct ConnectionsQuery {
    auto: Option<String>,
}

async fn connections(
    State(ws): State<WebState>,
    headers: HeaderMap,
    q: Result<Query<ConnectionsQuery>, QueryRejection>,
) -> Response {
    let a = try_page!(ws.authed(&headers));
    let auto = q.is_ok_and(|Query(q)| q.auto.is_some());
    let mut list = ws.app.core.registry().list();
    list.sort_by(|x, y| {
        (x.username.as_str(), x.connection_id.as_str())
            .cmp(&(y.username.as_str(), y.connection_id.as_str()))
    });
    html(pages::connections(
        &ws.chrome(&a),
        &list,
        sftpgo_core::now_ms(),
        auto,
    ))
}

async fn close_connection(
    State(ws): State<WebState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let (a, _) = try_page!(ws.posted(&headers, &body));
    let message = if ws.app.core.registry().close(&id) {
        tracing::info!(sender = "httpd", admin = %a.session.username, connection_id = %id, "web admin: connection closed");
        format!("Connection {id} closed.")
    } else {
        format!("Connection {id} is not open (any more).")
    };
    ws.done(&a, "/connections", message)
}

fn running_scans(ws: &WebState) -> Vec<(String, i64)> {
    ws.app.scans.running()
}

fn running_folder_scans(ws: &WebState) -> Vec<(String, i64)> {
    ws.app.folder_scans.running()
}

async fn scans(State(ws): State<WebState>, headers: HeaderMap) -> Response {
    let a = try_page!(ws.authed(&headers));
    html(pages::scans(
        &ws.chrome(&a),
        &running_scans(&ws),
        &running_folder_scans(&ws),
    ))
}

/// Starts a scan through the API's own [`crate::handlers::begin_scan`].
async fn start_scan(State(ws): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let (a, form) = try_page!(ws.posted(&headers, &body));
    let username = form.get("username").trim();
    let message = match ws.app.core.provider().user_by_username(username).await {
        Ok(user) => {
            let name = user.username.clone();
            if crate::handlers::begin_scan(&ws.app, user) {
                tracing::info!(sender = "httpd", admin = %a.session.username, username = %name, "web admin: quota scan started");
                format!("Quota scan of {name} started.")
            } else {
                format!("A quota scan of {name} is already running.")
            }
        }
        Err(ProviderError::NotFound(_)) => format!("There is no user {username:?}."),
        Err(e) => {
            tracing::warn!(sender = "httpd", error = %e, "web admin: quota scan not started");
            format!("The quota scan was not started: {e}")
        }
    };
    ws.done(&a, "/quota-scans", message)
}

/// Hosts the defender page lists at most.
const MAX_HOSTS: usize = 1000;

async fn defender(State(ws): State<WebState>, headers: HeaderMap) -> Response {
    let a = try_page!(ws.authed(&headers));
    let d = ws.app.core.defender();
    match d.hosts(MAX_HOSTS).await {
        Ok(hosts) => html(pages::defender(&ws.chrome(&a), d.enabled(), &hosts)),
        Err(e) => error_page(&ws, status_of(&e), "Defender", &e.to_string()),
    }
}

async fn unban(
    State(ws): State<WebState>,
    headers: HeaderMap,
    Path(ip): Path<String>,
    body: Bytes,
) -> Response {
    let (a, _) = try_page!(ws.posted(&headers, &body));
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return ws.done(&a, "/defender", format!("{ip:?} is not an IP address."));
    };
    let message = match ws.app.core.defender().unban(addr).await {
        Ok(true) => {
            tracing::info!(sender = "httpd", admin = %a.session.username, ip = %addr, "web admin: host removed from the defender");
            format!("{addr} removed.")
        }
        Ok(false) => format!("{addr} has no score or ban."),
        Err(e) => {
            tracing::warn!(sender = "httpd", error = %e, "web admin: host not removed");
            format!("{addr} was not removed: {e}")
        }
    };
    ws.done(&a, "/defender", message)
}

/// The metric families the status page shows (samples summed per label set as given).
const KEY_METRICS: [&str; 7] = [
    "sftpgo_active_connections",
    "sftpgo_connections_total",
    "sftpgo_logins_total",
    "sftpgo_transfer_bytes_total",
    "sftpgo_transfers_total",
    "sftpgo_connections_refused_total",
    "sftpgo_defender_bans_total",
];

/// The samples of [`KEY_METRICS`] from the Prometheus text.
fn key_metrics(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(name, _)| {
            let family = name.split('{').next().unwrap_or("");
            KEY_METRICS.contains(&family)
        })
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn status(State(ws): State<WebState>, headers: HeaderMap) -> Response {
    let a = try_page!(ws.authed(&headers));
    let core = &ws.app.core;
    let start = Instant::now();
    let health = match tokio::time::timeout(HEALTH_TIMEOUT, core.provider().ping()).await {
        Ok(Ok(())) => Ok(start.elapsed().as_millis()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", HEALTH_TIMEOUT.as_secs())),
    };
    let status = pages::Status {
        version: &ws.app.version,
        driver: core.provider().driver(),
        health,
        connections: core.registry().list().len(),
        scans: running_scans(&ws).len(),
        defender: core.defender().enabled(),
        metrics: key_metrics(&core.render_metrics()),
    };
    html(pages::status(&ws.chrome(&a), &status))
}

#[cfg(test)]
mod tests;
