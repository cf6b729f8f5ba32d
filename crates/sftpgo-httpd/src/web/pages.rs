//! The web admin's HTML (maud: every interpolated value is escaped).

use maud::{DOCTYPE, Markup, html};
use sftpgo_core::connection::ConnectionSnapshot;
use sftpgo_core::defender::HostStatus;
use sftpgo_provider::filesystem::{Filesystem, FsProvider};
use sftpgo_provider::{Folder, User};

use super::form::{
    ACCESS_SECRET, ADD_FOLDER_ROW, FORCE_PATH_STYLE, FolderRow, NUMBER_FIELDS, PERMISSIONS,
    PROVIDER, S3_TEXT_FIELDS, UPLOAD_CONCURRENCY, UserValues, VF_MAPPED_PATH, VF_QUOTA_FILES,
    VF_QUOTA_SIZE, VF_VIRTUAL_PATH,
};
use super::session::Session;

/// What every page of a logged-in operator needs.
pub(crate) struct Chrome<'a> {
    pub prefix: &'a str,
    pub session: &'a Session,
}

/// `ms` since the epoch as UTC text; "-" for 0.
pub(crate) fn time(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Bytes in binary units, one decimal.
pub(crate) fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn head(prefix: &str, title: &str, refresh: Option<u32>) -> Markup {
    html! {
        (DOCTYPE)
        meta charset="utf-8";
        @if let Some(secs) = refresh { meta http-equiv="refresh" content=(secs); }
        meta name="viewport" content="width=device-width, initial-scale=1";
        title { (title) " · SFTPGo admin" }
        link rel="stylesheet" href={ (prefix) "/static/style.css" };
    }
}

/// A page of a logged-in operator: navigation, logout, the flash message.
pub(crate) fn page(c: &Chrome, title: &str, content: Markup) -> Markup {
    refreshing_page(c, title, None, content)
}

/// [`page`], reloaded by the browser every `refresh` seconds when given.
pub(crate) fn refreshing_page(
    c: &Chrome,
    title: &str,
    refresh: Option<u32>,
    content: Markup,
) -> Markup {
    let p = c.prefix;
    html! {
        html lang="en" {
            head { (head(p, title, refresh)) }
            body {
                header.top {
                    span.brand { "SFTPGo admin" }
                    nav {
                        a href={ (p) "/users" } { "Users" }
                        a href={ (p) "/folders" } { "Folders" }
                        a href={ (p) "/connections" } { "Connections" }
                        a href={ (p) "/quota-scans" } { "Quota scans" }
                        a href={ (p) "/defender" } { "Defender" }
                        a href={ (p) "/status" } { "Status" }
                    }
                    form.logout method="post" action={ (p) "/logout" } {
                        (csrf(c))
                        span.who { (c.session.username) }
                        button type="submit" id="logout" { "Log out" }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(flash) = &c.session.flash {
                        p.flash role="status" id="flash" { (flash) }
                    }
                    (content)
                }
            }
        }
    }
}

/// The hidden CSRF field every form of a session carries.
pub(crate) fn csrf(c: &Chrome) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(c.session.csrf_token); }
}

/// A page outside a session (login, errors before login, the disabled notice).
pub(crate) fn bare(prefix: &str, title: &str, content: Markup) -> Markup {
    html! {
        html lang="en" {
            head { (head(prefix, title, None)) }
            body.bare {
                main.narrow {
                    p.brand { "SFTPGo admin" }
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

pub(crate) fn login(prefix: &str, error: Option<&str>, notice: Option<&str>) -> Markup {
    bare(
        prefix,
        "Log in",
        html! {
            @if let Some(n) = notice { p.flash id="notice" { (n) } }
            @if let Some(e) = error { p.error-summary role="alert" id="login-error" { (e) } }
            form method="post" action={ (prefix) "/login" } {
                label for="username" { "Username" }
                input #username type="text" name="username" autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button type="submit" id="login" { "Log in" }
            }
        },
    )
}

pub(crate) fn disabled(prefix: &str) -> Markup {
    bare(
        prefix,
        "The web admin is off",
        html! {
            p { "The web admin needs accounts to log in with, and this server has none: it uses the same "
                "htpasswd file (bcrypt entries) as the REST API's Basic auth." }
            p { "To turn it on, set " code { "httpd.auth_user_file" } " in the configuration (or "
                code { "SFTPGO_HTTPD__AUTH_USER_FILE" } ") to a file made with "
                code { "htpasswd -B -c users.htpasswd admin" } ", and restart." }
        },
    )
}

pub(crate) fn message(prefix: &str, title: &str, text: &str) -> Markup {
    bare(
        prefix,
        title,
        html! {
            p.error-summary role="alert" id="error" { (text) }
            p { a href={ (prefix) "/users" } { "Back to the admin" } }
        },
    )
}

fn quota_bar(used: i64, limit: i64, fmt: fn(i64) -> String) -> Markup {
    html! {
        span.quota {
            @if limit > 0 {
                progress value=(used.clamp(0, limit)) max=(limit) {}
                " " (fmt(used)) " / " (fmt(limit))
            } @else {
                (fmt(used)) " (unlimited)"
            }
        }
    }
}

fn count(n: i64) -> String {
    n.to_string()
}

fn rate(kbs: i64) -> String {
    if kbs > 0 {
        format!("{kbs} KB/s")
    } else {
        "unlimited".into()
    }
}

fn storage(u: &User) -> Markup {
    let s3 = &u.filesystem.s3config;
    html! {
        @match u.filesystem.provider {
            sftpgo_provider::filesystem::FsProvider::Local => { code { (u.home_dir) } }
            sftpgo_provider::filesystem::FsProvider::S3 => {
                "S3: " code { (s3.bucket) "/" (s3.key_prefix) }
            }
        }
    }
}

pub(crate) struct UserList<'a> {
    pub users: &'a [User],
    pub search: &'a str,
    pub offset: u32,
    pub page_size: u32,
    pub more: bool,
}

pub(crate) fn users(c: &Chrome, l: &UserList) -> Markup {
    let p = c.prefix;
    let page_link = |offset: u32| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !l.search.is_empty() {
            q.append_pair("username", l.search);
        }
        q.append_pair("offset", &offset.to_string());
        format!("{p}/users?{}", q.finish())
    };
    page(
        c,
        "Users",
        html! {
            div.toolbar {
                form.search method="get" action={ (p) "/users" } {
                    label for="search" { "Username" }
                    input #search type="search" name="username" value=(l.search) placeholder="exact username";
                    button type="submit" { "Search" }
                    @if !l.search.is_empty() { a href={ (p) "/users" } { "Show all" } }
                }
                a.button #add-user href={ (p) "/users/new" } { "Add user" }
            }
            @if l.users.is_empty() {
                p.empty { "No users" @if !l.search.is_empty() { " named " code { (l.search) } } "." }
            } @else {
                table #users {
                    thead { tr {
                        th { "Username" } th { "Storage" } th { "Permissions" }
                        th { "Quota size" } th { "Quota files" } th { "Bandwidth up / down" }
                        th { "Max sessions" } th { "" }
                    } }
                    tbody {
                        @for u in l.users {
                            tr {
                                td { a href={ (p) "/users/" (u.id) } { (u.username) } }
                                td { (storage(u)) }
                                td { (u.permissions.iter().filter_map(|p| serde_json::to_value(p).ok()).filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>().join(", ")) }
                                td { (quota_bar(u.used_quota_size, u.quota_size, bytes)) }
                                td { (quota_bar(u.used_quota_files, u.quota_files, count)) }
                                td { (rate(u.upload_bandwidth)) " / " (rate(u.download_bandwidth)) }
                                td { @if u.max_sessions > 0 { (u.max_sessions) } @else { "unlimited" } }
                                td.actions {
                                    a href={ (p) "/users/" (u.id) } { "Edit" }
                                    " "
                                    a href={ (p) "/users/" (u.id) "/delete" } { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
            nav.pages {
                @if l.offset > 0 {
                    a #prev href=(page_link(l.offset.saturating_sub(l.page_size))) { "← Previous" }
                }
                @if l.more {
                    a #next href=(page_link(l.offset + l.page_size)) { "Next →" }
                }
            }
        },
    )
}

fn field_error(v: &UserValues, name: &str) -> Markup {
    html! {
        @if let Some(e) = v.error(name) {
            p.field-error id={ "error-" (name) } { (e) }
        }
    }
}

fn text_input(v: &UserValues, name: &str, label: &str, hint: &str) -> Markup {
    html! {
        div.field.invalid[v.error(name).is_some()] {
            label for=(name) { (label) }
            input id=(name) type="text" name=(name) value=(v.value(name)) aria-invalid=[v.error(name).map(|_| "true")];
            @if !hint.is_empty() { small { (hint) } }
            (field_error(v, name))
        }
    }
}

/// The storage fields of the user and the folder forms: local, or S3 with its settings
/// (the secret write-only: kept when left empty if `secret_stored`).
fn storage_fields(v: &UserValues, secret_stored: bool, local_label: &str) -> Markup {
    let is_s3 = v.value(PROVIDER) == "1";
    html! {
        fieldset {
            legend { "Storage" }
            div.field.invalid[v.error(PROVIDER).is_some()] {
                label for=(PROVIDER) { "Provider" }
                select id=(PROVIDER) name=(PROVIDER) {
                    option value="0" selected[!is_s3] { (local_label) }
                    option value="1" selected[is_s3] { "S3-compatible bucket" }
                }
                (field_error(v, PROVIDER))
            }
            p.muted { "The S3 fields are used with the S3 provider only." }
            @for (name, label) in S3_TEXT_FIELDS {
                (text_input(v, name, label, ""))
            }
            div.field.invalid[v.error(ACCESS_SECRET).is_some()] {
                label for=(ACCESS_SECRET) { "Access secret" }
                input id=(ACCESS_SECRET) type="password" name=(ACCESS_SECRET) autocomplete="off"
                    placeholder=(if secret_stored { "(stored secret kept when empty)" } else { "" });
                (field_error(v, ACCESS_SECRET))
            }
            (text_input(v, NUMBER_FIELDS[7].0, NUMBER_FIELDS[7].1, NUMBER_FIELDS[7].2))
            (text_input(v, UPLOAD_CONCURRENCY, "Upload concurrency", "parts in flight, 0: 2"))
            label.check {
                input type="checkbox" name=(FORCE_PATH_STYLE) id=(FORCE_PATH_STYLE) checked[v.value(FORCE_PATH_STYLE) == "on"];
                " Force path-style addressing"
            }
        }
    }
}

/// The field names of the provider's virtual folder errors, shown under the rows.
const VF_ERRORS: [&str; 5] = [
    "virtual_folders",
    "virtual_folders.virtual_path",
    "virtual_folders.mapped_path",
    "virtual_folders.quota_size",
    "virtual_folders.quota_files",
];

/// The user's virtual folder rows and one empty row to add one; `folder_paths` are the
/// existing folders offered for the mapped path.
fn virtual_folder_rows(v: &UserValues, folder_paths: &[String]) -> Markup {
    let empty = FolderRow::default();
    let rows = v.folders.iter().chain(std::iter::once(&empty));
    let invalid = VF_ERRORS.iter().any(|f| v.error(f).is_some());
    html! {
        fieldset id="virtual-folders" class=[invalid.then_some("invalid")] {
            legend { "Virtual folders" }
            p.muted { "A folder's files seen at the virtual path. An unknown mapped path creates a local folder there. "
                "Quota size and files: -1 (or empty) counts the folder in the user's quota; 0 or more is the folder's own limit (0: unlimited). "
                "Empty a row to remove the folder from the user (its files stay)." }
            datalist #folder-paths { @for path in folder_paths { option value=(path) {} } }
            table.folder-rows {
                thead { tr { th { "Virtual path" } th { "Mapped path" } th { "Quota size (bytes)" } th { "Quota files" } } }
                tbody {
                    @for (i, row) in rows.enumerate() {
                        tr {
                            td { input type="text" name=(VF_VIRTUAL_PATH) id={ "vf-" (i) "-virtual_path" } value=(row.virtual_path) placeholder="/shared" aria-label="Virtual path"; }
                            td { input type="text" name=(VF_MAPPED_PATH) id={ "vf-" (i) "-mapped_path" } value=(row.mapped_path) list="folder-paths" placeholder="/srv/shared" aria-label="Mapped path"; }
                            td { input type="text" name=(VF_QUOTA_SIZE) id={ "vf-" (i) "-quota_size" } value=(row.quota_size) placeholder="-1" aria-label="Quota size"; }
                            td { input type="text" name=(VF_QUOTA_FILES) id={ "vf-" (i) "-quota_files" } value=(row.quota_files) placeholder="-1" aria-label="Quota files"; }
                        }
                    }
                }
            }
            @for name in VF_ERRORS { (field_error(v, name)) }
        }
    }
}

/// The user form, for a new user (`stored` = None) or an existing one.
pub(crate) fn user_form(
    c: &Chrome,
    v: &UserValues,
    stored: Option<&User>,
    folder_paths: &[String],
) -> Markup {
    let p = c.prefix;
    let (title, action) = match stored {
        Some(u) => (
            format!("User {}", u.username),
            format!("{p}/users/{}", u.id),
        ),
        None => ("Add user".to_string(), format!("{p}/users/new")),
    };
    page(
        c,
        &title,
        html! {
            @if let Some(e) = v.error("") {
                p.error-summary role="alert" id="form-error" { (e) }
            }
            @if !v.errors.is_empty() && v.error("").is_none() {
                p.error-summary role="alert" id="form-error" { "The user was not saved: see the fields marked below." }
            }
            @if let Some(u) = stored {
                section.usage {
                    h2 { "Usage" }
                    p { "Quota size: " (quota_bar(u.used_quota_size, u.quota_size, bytes)) }
                    p { "Quota files: " (quota_bar(u.used_quota_files, u.quota_files, count)) }
                    p.muted { "Last update: " (time(u.last_quota_update)) }
                    form method="post" action={ (p) "/quota-scans" } {
                        (csrf(c))
                        input type="hidden" name="username" value=(u.username);
                        button type="submit" id="scan" { "Start a quota scan" }
                    }
                }
            }
            form.user method="post" action=(action) novalidate {
                (csrf(c))
                fieldset {
                    legend { "Account" }
                    (text_input(v, "username", "Username", ""))
                    div.field.invalid[v.error("password").is_some()] {
                        label for="password" { "Password" }
                        input #password type="password" name="password" autocomplete="new-password"
                            placeholder=(if stored.is_some() { "(unchanged when empty)" } else { "" });
                        @if stored.is_some_and(|u| u.password.is_some()) {
                            label.check { input type="checkbox" name="clear_password" id="clear_password"; " Remove the password (public keys only)" }
                        }
                        (field_error(v, "password"))
                    }
                    div.field.invalid[v.error("public_keys").is_some()] {
                        label for="public_keys" { "Public keys" }
                        textarea #public_keys name="public_keys" rows="4" placeholder="one authorized_keys line each (ssh-ed25519 AAAA... comment)" { (v.value("public_keys")) }
                        (field_error(v, "public_keys"))
                    }
                    (text_input(v, "home_dir", "Home dir", "absolute path on this server"))
                    div.field.invalid[v.error("permissions").is_some()] {
                        span.label { "Permissions" }
                        div.checks {
                            @for perm in PERMISSIONS {
                                label.check {
                                    input type="checkbox" name="permissions" value=(perm) id={ "perm-" (perm) }
                                        checked[v.permissions.iter().any(|x| x == perm)];
                                    " " (if perm == "*" { "all (*)" } else { perm })
                                }
                            }
                        }
                        (field_error(v, "permissions"))
                    }
                }
                fieldset {
                    legend { "Limits" }
                    @for (name, label, hint) in &NUMBER_FIELDS[..7] {
                        (text_input(v, name, label, hint))
                    }
                }
                (virtual_folder_rows(v, folder_paths))
                (storage_fields(v, stored.is_some(), "Local disk (home dir)"))
                div.buttons {
                    button type="submit" id="save" { (if stored.is_some() { "Save" } else { "Add user" }) }
                    // After Save: Enter in a field submits the first button.
                    button type="submit" name=(ADD_FOLDER_ROW) value="1" id="add-folder-row" { "Add another folder row" }
                    a href={ (p) "/users" } { "Cancel" }
                    @if let Some(u) = stored {
                        a.danger href={ (p) "/users/" (u.id) "/delete" } id="delete" { "Delete user" }
                    }
                }
            }
        },
    )
}

pub(crate) fn confirm_delete(c: &Chrome, u: &User) -> Markup {
    let p = c.prefix;
    page(
        c,
        &format!("Delete user {}", u.username),
        html! {
            p { "The account " strong { (u.username) } " will be deleted. Its files (" (storage(u)) ") are left where they are." }
            form method="post" action={ (p) "/users/" (u.id) "/delete" } {
                (csrf(c))
                button.danger type="submit" id="confirm-delete" { "Delete" }
                " "
                a href={ (p) "/users/" (u.id) } { "Cancel" }
            }
        },
    )
}

/// Where a folder's files are: its directory, or the bucket and prefix.
fn folder_storage(mapped_path: &str, fs: &Filesystem) -> Markup {
    html! {
        @match fs.provider {
            FsProvider::Local => { "local: " code { (mapped_path) } }
            FsProvider::S3 => { "S3: " code { (fs.s3config.bucket) "/" (fs.s3config.key_prefix) } }
        }
    }
}

/// A folder page's address: `/folders/{what}?mapped_path=...`.
pub(crate) fn folder_link(prefix: &str, what: &str, mapped_path: &str) -> String {
    let q: String = form_urlencoded::byte_serialize(mapped_path.as_bytes()).collect();
    format!("{prefix}/folders/{what}?mapped_path={q}")
}

pub(crate) struct FolderList<'a> {
    pub folders: &'a [Folder],
    pub offset: u32,
    pub page_size: u32,
    pub more: bool,
    pub scanning: &'a [(String, i64)],
}

pub(crate) fn folders(c: &Chrome, l: &FolderList) -> Markup {
    let p = c.prefix;
    let page_link = |offset: u32| format!("{p}/folders?offset={offset}");
    page(
        c,
        "Folders",
        html! {
            p.toolbar { a.button href={ (p) "/folders/new" } id="add-folder" { "Add folder" } }
            p.muted { "Virtual folders are mapped into users' trees from the user form. Their used quota is counted as files are uploaded and replaced by a scan." }
            @if l.folders.is_empty() {
                p.empty id="no-folders" { @if l.offset > 0 { "No more folders." } @else { "No folders yet." } }
            } @else {
                table #folders {
                    thead { tr {
                        th { "Mapped path" } th { "Storage" } th { "Used size" } th { "Used files" }
                        th { "Users" } th { "Last update" } th { "" }
                    } }
                    tbody {
                        @for f in l.folders {
                            tr data-path=(f.mapped_path) {
                                td.path { a href=(folder_link(p, "edit", &f.mapped_path)) { (f.mapped_path) } }
                                td { (folder_storage(&f.mapped_path, &f.filesystem)) }
                                td.used-size { (bytes(f.used_quota_size)) }
                                td.used-files { (f.used_quota_files) }
                                td.users {
                                    @if f.users.is_empty() { span.muted { "none" } }
                                    @for (i, u) in f.users.iter().enumerate() { @if i > 0 { ", " } (u) }
                                }
                                td { (time(f.last_quota_update)) }
                                td.actions {
                                    @if l.scanning.iter().any(|(m, _)| *m == f.mapped_path) {
                                        span.muted { "scanning" } " "
                                    } @else {
                                        form.inline method="post" action={ (p) "/folders/scan" } {
                                            (csrf(c))
                                            input type="hidden" name="mapped_path" value=(f.mapped_path);
                                            button type="submit" { "Scan quota" }
                                        }
                                        " "
                                    }
                                    a href=(folder_link(p, "edit", &f.mapped_path)) { "Edit" }
                                    " "
                                    a href=(folder_link(p, "delete", &f.mapped_path)) { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
            nav.pages {
                @if l.offset > 0 {
                    a #prev href=(page_link(l.offset.saturating_sub(l.page_size))) { "← Previous" }
                }
                @if l.more {
                    a #next href=(page_link(l.offset + l.page_size)) { "Next →" }
                }
            }
        },
    )
}

/// The folder form: a new folder (`stored` = None: mapped path and storage) or the
/// storage of an existing one.
pub(crate) fn folder_form(c: &Chrome, v: &UserValues, stored: Option<&Folder>) -> Markup {
    let p = c.prefix;
    let (title, action) = match stored {
        Some(f) => (
            format!("Folder {}", f.mapped_path),
            folder_link(p, "edit", &f.mapped_path),
        ),
        None => ("Add folder".to_string(), format!("{p}/folders/new")),
    };
    page(
        c,
        &title,
        html! {
            @if let Some(e) = v.error("") {
                p.error-summary role="alert" id="form-error" { (e) }
            }
            @if !v.errors.is_empty() && v.error("").is_none() {
                p.error-summary role="alert" id="form-error" { "The folder was not saved: see the fields marked below." }
            }
            @if let Some(f) = stored {
                section.usage {
                    h2 { "Usage" }
                    p #folder-used { "Used: " (bytes(f.used_quota_size)) ", " (f.used_quota_files) " files" }
                    p.muted { "Last update: " (time(f.last_quota_update)) }
                    p { "Mapped by: "
                        @if f.users.is_empty() { span.muted { "no user" } }
                        @for (i, u) in f.users.iter().enumerate() { @if i > 0 { ", " } (u) } }
                    form method="post" action={ (p) "/folders/scan" } {
                        (csrf(c))
                        input type="hidden" name="mapped_path" value=(f.mapped_path);
                        button type="submit" id="scan" { "Start a quota scan" }
                    }
                }
            }
            form.user method="post" action=(action) novalidate {
                (csrf(c))
                fieldset {
                    legend { "Folder" }
                    @if stored.is_some() {
                        p { "Mapped path: " code #mapped_path { (v.value("mapped_path")) } }
                    } @else {
                        (text_input(v, "mapped_path", "Mapped path", "absolute: the directory on this server (local), or a name for an S3 folder"))
                    }
                }
                (storage_fields(v, stored.is_some(), "Local disk (the mapped path)"))
                div.buttons {
                    button type="submit" id="save" { (if stored.is_some() { "Save" } else { "Add folder" }) }
                    a href={ (p) "/folders" } { "Cancel" }
                    @if let Some(f) = stored {
                        a.danger href=(folder_link(p, "delete", &f.mapped_path)) id="delete" { "Delete folder" }
                    }
                }
            }
        },
    )
}

pub(crate) fn confirm_delete_folder(c: &Chrome, f: &Folder) -> Markup {
    let p = c.prefix;
    page(
        c,
        &format!("Delete folder {}", f.mapped_path),
        html! {
            p { "The folder " strong { (f.mapped_path) } " will be deleted and removed from the users that map it ("
                @if f.users.is_empty() { "none" }
                @for (i, u) in f.users.iter().enumerate() { @if i > 0 { ", " } (u) }
                "). Its files (" (folder_storage(&f.mapped_path, &f.filesystem)) ") stay where they are." }
            form method="post" action=(folder_link(p, "delete", &f.mapped_path)) {
                (csrf(c))
                button.danger type="submit" id="confirm-delete" { "Delete" }
                " "
                a href=(folder_link(p, "edit", &f.mapped_path)) { "Cancel" }
            }
        },
    )
}

/// Seconds between reloads of the connections page when auto-refresh is on.
pub(crate) const CONNECTIONS_REFRESH: u32 = 5;

pub(crate) fn connections(
    c: &Chrome,
    list: &[ConnectionSnapshot],
    now_ms: i64,
    auto: bool,
) -> Markup {
    let p = c.prefix;
    refreshing_page(
        c,
        "Connections",
        auto.then_some(CONNECTIONS_REFRESH),
        html! {
            p.toolbar {
                a.button href={ (p) "/connections" @if auto { "?auto=1" } } id="refresh" { "Refresh" }
                @if auto {
                    a href={ (p) "/connections" } id="auto" { "Stop refreshing" }
                } @else {
                    a href={ (p) "/connections?auto=1" } id="auto" { "Refresh every " (CONNECTIONS_REFRESH) " s" }
                }
            }
            @if list.is_empty() {
                p.empty id="no-connections" { "Nobody is connected." }
            } @else {
                table #connections {
                    thead { tr {
                        th { "User" } th { "Protocol" } th { "Client address" } th { "Client" }
                        th { "Connected" } th { "Last activity" } th { "Transfers" } th { "" }
                    } }
                    tbody {
                        @for conn in list {
                            tr data-id=(conn.connection_id) {
                                td.user { (conn.username) }
                                td.protocol { (conn.protocol) }
                                td { code { (conn.remote_address) } }
                                td { (conn.client_version) }
                                td { (time(conn.connection_time)) }
                                td { (time(conn.last_activity)) }
                                td {
                                    @if conn.active_transfers.is_empty() { span.muted { "none" } }
                                    @for t in &conn.active_transfers {
                                        @let secs = ((now_ms - t.start_time).max(1) as f64) / 1000.0;
                                        div.transfer {
                                            (t.operation_type) " " code { (t.path) } ": "
                                            (bytes(t.size as i64)) " at "
                                            (bytes((t.size as f64 / secs) as i64)) "/s"
                                        }
                                    }
                                }
                                td {
                                    form method="post" action={ (p) "/connections/" (conn.connection_id) "/close" } {
                                        (csrf(c))
                                        button.danger type="submit" { "Close" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub(crate) fn scans(
    c: &Chrome,
    running: &[(String, i64)],
    running_folders: &[(String, i64)],
) -> Markup {
    let p = c.prefix;
    page(
        c,
        "Quota scans",
        html! {
            p { "A scan counts a user's files and bytes and replaces the stored used quota." }
            form.inline method="post" action={ (p) "/quota-scans" } {
                (csrf(c))
                label for="scan-username" { "Username" }
                input #scan-username type="text" name="username" required;
                button type="submit" id="start-scan" { "Start scan" }
            }
            h2 { "Running" }
            @if running.is_empty() {
                p.empty id="no-scans" { "No scan is running." }
            } @else {
                table #scans {
                    thead { tr { th { "User" } th { "Started" } } }
                    tbody { @for (u, t) in running { tr { td { (u) } td { (time(*t)) } } } }
                }
            }
            h2 { "Running folder scans" }
            p.muted { "Folder scans start from the " a href={ (p) "/folders" } { "Folders" } " page." }
            @if running_folders.is_empty() {
                p.empty id="no-folder-scans" { "No folder scan is running." }
            } @else {
                table #folder-scans {
                    thead { tr { th { "Mapped path" } th { "Started" } } }
                    tbody { @for (f, t) in running_folders { tr { td { code { (f) } } td { (time(*t)) } } } }
                }
            }
        },
    )
}

pub(crate) fn defender(c: &Chrome, enabled: bool, hosts: &[HostStatus]) -> Markup {
    let p = c.prefix;
    page(
        c,
        "Defender",
        html! {
            @if !enabled {
                p { "The defender is off (" code { "common.defender.enabled" } ")." }
            }
            @if hosts.is_empty() {
                p.empty id="no-hosts" { "No host has a score or a ban." }
            } @else {
                table #hosts {
                    thead { tr { th { "Host" } th { "Score" } th { "Banned until" } th { "" } } }
                    tbody {
                        @for h in hosts {
                            tr {
                                td { code { (h.ip) } }
                                td { (h.score) }
                                td { (h.ban_until.map(time).unwrap_or_else(|| "not banned".into())) }
                                td {
                                    form method="post" action={ (p) "/defender/" (h.ip) "/unban" } {
                                        (csrf(c))
                                        button type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub(crate) struct Status<'a> {
    pub version: &'a crate::VersionInfo,
    pub driver: &'a str,
    pub health: Result<u128, String>,
    pub connections: usize,
    pub scans: usize,
    pub defender: bool,
    pub metrics: Vec<(String, String)>,
}

pub(crate) fn status(c: &Chrome, s: &Status) -> Markup {
    page(
        c,
        "Status",
        html! {
            dl.status {
                dt { "Version" } dd #version { (s.version.version) }
                dt { "Build" } dd { (s.version.build_date) " " code { (s.version.commit_hash) } }
                dt { "Data provider" } dd { (s.driver) }
                dt { "Provider health" }
                dd #health {
                    @match &s.health {
                        Ok(ms) => { span.ok { "answers (" (ms) " ms)" } }
                        Err(e) => { span.bad { "does not answer: " (e) } }
                    }
                }
                dt { "Open connections" } dd { (s.connections) }
                dt { "Quota scans running" } dd { (s.scans) }
                dt { "Defender" } dd { (if s.defender { "on" } else { "off" }) }
            }
            h2 { "Key metrics" }
            table #metrics {
                tbody { @for (k, v) in &s.metrics { tr { td { code { (k) } } td { (v) } } } }
            }
            p.muted { "All metrics: " code { "/metrics" } " (Prometheus)." }
        },
    )
}

/// The stylesheet, served from the binary.
pub(crate) const STYLE: &str = include_str!("style.css");
