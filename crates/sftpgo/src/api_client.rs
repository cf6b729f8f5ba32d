//! `sftpgo api ...`: a client of the REST API (reqwest + rustls). Tables for people,
//! `--json` for scripts; an API error prints its message and exits 1.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

/// `sftpgo api`: options shared by every command, then the command.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Base URL of the server (the part before /api/v1).
    #[arg(
        long,
        env = "SFTPGO_API_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// User for HTTP Basic auth (httpd.auth_user_file). Give it before the command.
    #[arg(long, id = "api_user", env = "SFTPGO_API_USER")]
    pub user: Option<String>,
    /// Password for HTTP Basic auth; prefer the environment variable. Give it before the
    /// command (`users add --password` is the new user's password).
    #[arg(
        long = "password",
        id = "api_password",
        env = "SFTPGO_API_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Do not verify the server's TLS certificate.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// PEM file of a CA to trust for the server's certificate (besides the system's).
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: ApiCommand,
}

// Parsed once per process: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// The server's version.
    Version,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage virtual folders (directories or bucket prefixes users map into their tree).
    Folders {
        #[command(subcommand)]
        command: FoldersCommand,
    },
    /// Live SSH connections.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Quota scans of users and folders.
    #[command(alias = "quota-scans")]
    QuotaScan {
        #[command(subcommand)]
        command: QuotaScanCommand,
    },
    /// Client IPs the defender scored or banned.
    Defender {
        #[command(subcommand)]
        command: DefenderCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum DefenderCommand {
    /// List hosts with a score or a ban.
    List,
    /// Show one host (an IP address).
    Get { ip: String },
    /// Unban a host and forget its score.
    Unban { ip: String },
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users ordered by username.
    List {
        /// Page size (1-500).
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        offset: Option<u32>,
        /// ASC or DESC.
        #[arg(long, value_parser = ["ASC", "DESC", "asc", "desc"])]
        order: Option<String>,
        /// Only this username.
        #[arg(long)]
        username: Option<String>,
    },
    /// Show one user.
    Get { id: i64 },
    /// Add a user.
    Add {
        username: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Change a user: only the options given are sent, the others keep their values.
    Update {
        id: i64,
        #[command(flatten)]
        fields: UserFields,
        /// Remove all the user's virtual folders (the folders themselves are kept).
        #[arg(long, conflicts_with = "virtual_folders")]
        no_virtual_folders: bool,
    },
    /// Delete a user (the home directory is kept).
    Delete { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum FoldersCommand {
    /// List folders ordered by mapped path, with the users that map each.
    List {
        /// Page size (1-500).
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        offset: Option<u32>,
        /// ASC or DESC.
        #[arg(long, value_parser = ["ASC", "DESC", "asc", "desc"])]
        order: Option<String>,
        /// Only this mapped path.
        #[arg(long)]
        folder_path: Option<String>,
    },
    /// Show one folder.
    Get { mapped_path: String },
    /// Add a folder: a local directory (the mapped path), or with --fs s3 a bucket prefix
    /// (the mapped path is then only its name, e.g. /s3/reports).
    Add {
        mapped_path: String,
        #[command(flatten)]
        storage: StorageFields,
    },
    /// Change a folder's storage: only the options given are sent.
    Update {
        mapped_path: String,
        #[command(flatten)]
        storage: StorageFields,
    },
    /// Delete a folder and every user's mapping of it (its files are kept).
    Delete { mapped_path: String },
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// List live connections and their transfers.
    List,
    /// Close a connection (its transfers are aborted).
    Close { id: String },
}

#[derive(Debug, Subcommand)]
pub enum QuotaScanCommand {
    /// List running quota scans.
    List,
    /// Start a quota scan of a user's home directory.
    Start { username: String },
    /// List running quota scans of folders.
    ListFolders,
    /// Start a quota scan of a folder.
    StartFolder { mapped_path: String },
}

/// The user options of `users add` and `users update`.
#[derive(Debug, Default, Args)]
pub struct UserFields {
    /// Password (stored argon2id-hashed), or a hash in a supported format; "" clears it
    /// on update.
    #[arg(long)]
    pub password: Option<String>,
    /// An authorized_keys line; repeat for several keys (replaces the stored keys).
    #[arg(long = "public-key", value_name = "KEY")]
    pub public_keys: Vec<String>,
    /// Absolute path of the home directory.
    #[arg(long)]
    pub home_dir: Option<String>,
    /// Comma-separated list of list, download, upload, delete, rename, create_dirs,
    /// create_symlinks, or '*' for all.
    #[arg(long)]
    pub permissions: Option<String>,
    #[arg(long)]
    pub uid: Option<i64>,
    #[arg(long)]
    pub gid: Option<i64>,
    /// Concurrent sessions; 0 = unlimited.
    #[arg(long)]
    pub max_sessions: Option<i64>,
    /// Bytes, or with a unit: 500MB, 1GB (powers of 1000), 512MiB, 2GiB (powers of 1024);
    /// 0 = unlimited.
    #[arg(long, value_parser = parse_size)]
    pub quota_size: Option<i64>,
    /// Files; 0 = unlimited.
    #[arg(long)]
    pub quota_files: Option<i64>,
    /// KB/s (1 KB = 1000 bytes); 0 = unlimited.
    #[arg(long)]
    pub upload_bandwidth: Option<i64>,
    /// KB/s (1 KB = 1000 bytes); 0 = unlimited.
    #[arg(long)]
    pub download_bandwidth: Option<i64>,
    #[command(flatten)]
    pub storage: StorageFields,
    /// A folder seen at VIRTUAL_PATH: VIRTUAL_PATH=MAPPED_PATH[:QUOTA_SIZE:QUOTA_FILES];
    /// repeat for several (on update, replaces the user's folders). QUOTA_SIZE takes the
    /// --quota-size units; the default 0:0 is the folder's own quota for this user,
    /// unlimited and not counted in the user's; -1:-1 counts its files in the user's
    /// quota. A MAPPED_PATH not known yet creates a local folder.
    #[arg(
        long = "virtual-folder",
        value_name = "VIRTUAL_PATH=MAPPED_PATH[:QUOTA_SIZE:QUOTA_FILES]",
        value_parser = parse_virtual_folder
    )]
    pub virtual_folders: Vec<VirtualFolderArg>,
}

/// The storage options of users and folders: `--fs` and the `--s3-*` options.
#[derive(Debug, Default, Args)]
pub struct StorageFields {
    /// Where the files live: local (the user's home dir, the folder's mapped path) or s3
    /// (a bucket, the --s3-* options).
    #[arg(long = "fs", value_parser = ["local", "s3"])]
    pub fs_provider: Option<String>,
    #[arg(long)]
    pub s3_bucket: Option<String>,
    #[arg(long)]
    pub s3_region: Option<String>,
    /// http(s)://host[:port] of an S3-compatible store; empty: AWS.
    #[arg(long)]
    pub s3_endpoint: Option<String>,
    #[arg(long)]
    pub s3_access_key: Option<String>,
    /// Stored encrypted, never shown. Omitted on update: the stored one is kept.
    #[arg(long)]
    pub s3_access_secret: Option<String>,
    /// Where the files start in the bucket, ending with '/' (users/alice/).
    #[arg(long)]
    pub s3_key_prefix: Option<String>,
    #[arg(long)]
    pub s3_storage_class: Option<String>,
    /// MiB per multipart part (5 to 5120; 0 = 5).
    #[arg(long)]
    pub s3_upload_part_size: Option<i64>,
    /// Parts of one upload in flight (1 to 64; 0 = 2).
    #[arg(long)]
    pub s3_upload_concurrency: Option<i64>,
    /// Address the bucket as endpoint/bucket (most S3-compatible stores).
    #[arg(long)]
    pub s3_force_path_style: Option<bool>,
}

impl UserFields {
    /// The JSON fields of the options given.
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if let Some(p) = &self.password {
            m.insert("password".into(), json!(p));
        }
        if !self.public_keys.is_empty() {
            m.insert("public_keys".into(), json!(self.public_keys));
        }
        if let Some(h) = &self.home_dir {
            m.insert("home_dir".into(), json!(h));
        }
        if let Some(p) = &self.permissions {
            let list: Vec<&str> = p
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            m.insert("permissions".into(), json!(list));
        }
        let numbers = [
            ("uid", self.uid),
            ("gid", self.gid),
            ("max_sessions", self.max_sessions),
            ("quota_size", self.quota_size),
            ("quota_files", self.quota_files),
            ("upload_bandwidth", self.upload_bandwidth),
            ("download_bandwidth", self.download_bandwidth),
        ];
        for (k, v) in numbers {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        if let Some(fs) = self.storage.to_json() {
            m.insert("filesystem".into(), Value::Object(fs));
        }
        if !self.virtual_folders.is_empty() {
            let list: Vec<Value> = self
                .virtual_folders
                .iter()
                .map(VirtualFolderArg::to_json)
                .collect();
            m.insert("virtual_folders".into(), Value::Array(list));
        }
        m
    }
}

impl StorageFields {
    /// The (partial) `filesystem` object of the options given, `None` without any: the
    /// server merges it onto the stored one on update.
    pub fn to_json(&self) -> Option<Map<String, Value>> {
        let mut s3 = Map::new();
        for (k, v) in [
            ("bucket", &self.s3_bucket),
            ("region", &self.s3_region),
            ("endpoint", &self.s3_endpoint),
            ("access_key", &self.s3_access_key),
            ("access_secret", &self.s3_access_secret),
            ("key_prefix", &self.s3_key_prefix),
            ("storage_class", &self.s3_storage_class),
        ] {
            if let Some(v) = v {
                s3.insert(k.into(), json!(v));
            }
        }
        for (k, v) in [
            ("upload_part_size", self.s3_upload_part_size),
            ("upload_concurrency", self.s3_upload_concurrency),
        ] {
            if let Some(v) = v {
                s3.insert(k.into(), json!(v));
            }
        }
        if let Some(v) = self.s3_force_path_style {
            s3.insert("force_path_style".into(), json!(v));
        }
        let mut fs = Map::new();
        if let Some(p) = &self.fs_provider {
            fs.insert("provider".into(), json!(if p == "s3" { 1 } else { 0 }));
        }
        if !s3.is_empty() {
            fs.insert("s3config".into(), Value::Object(s3));
        }
        (!fs.is_empty()).then_some(fs)
    }
}

/// One `--virtual-folder` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualFolderArg {
    pub virtual_path: String,
    pub mapped_path: String,
    pub quota_size: i64,
    pub quota_files: i64,
}

impl VirtualFolderArg {
    fn to_json(&self) -> Value {
        json!({
            "virtual_path": self.virtual_path,
            "mapped_path": self.mapped_path,
            "quota_size": self.quota_size,
            "quota_files": self.quota_files,
        })
    }
}

/// Parses `VIRTUAL_PATH=MAPPED_PATH[:QUOTA_SIZE:QUOTA_FILES]`. A MAPPED_PATH that holds
/// a ':' needs the quota part (the last two ':' fields are the quota).
pub fn parse_virtual_folder(s: &str) -> Result<VirtualFolderArg, String> {
    const FORM: &str = "expected VIRTUAL_PATH=MAPPED_PATH[:QUOTA_SIZE:QUOTA_FILES], \
                        e.g. /reports=/srv/shared/reports:10GB:1000";
    let Some((virtual_path, rest)) = s.split_once('=') else {
        return Err(format!("missing '=' in {s:?}: {FORM}"));
    };
    if virtual_path.is_empty() {
        return Err(format!("empty VIRTUAL_PATH in {s:?}: {FORM}"));
    }
    let (mapped_path, quota_size, quota_files) = match rest.split_once(':') {
        None => (rest, 0, 0),
        Some(_) => {
            let mut parts = rest.rsplitn(3, ':');
            let files = parts.next().unwrap_or_default();
            let size = parts.next().unwrap_or_default();
            let Some(mapped) = parts.next() else {
                return Err(format!(
                    "{rest:?} has one ':' but the quota is QUOTA_SIZE:QUOTA_FILES (both, \
                     e.g. :10GB:1000, or :-1:-1 to count in the user's quota): {FORM}"
                ));
            };
            let size = match size.trim() {
                "-1" => -1,
                t if t.starts_with('-') => {
                    return Err(format!(
                        "QUOTA_SIZE of {s:?}: {t} is negative (-1 only: counted in the \
                         user's quota)"
                    ));
                }
                t => parse_size(t).map_err(|e| format!("QUOTA_SIZE of {s:?}: {e}"))?,
            };
            let files: i64 = files.trim().parse().map_err(|_| {
                format!("QUOTA_FILES of {s:?}: {files:?} is not a number of files (or -1)")
            })?;
            if files < -1 {
                return Err(format!("QUOTA_FILES of {s:?}: {files} is below -1"));
            }
            (mapped, size, files)
        }
    };
    if mapped_path.is_empty() {
        return Err(format!("empty MAPPED_PATH in {s:?}: {FORM}"));
    }
    if (quota_size == -1) != (quota_files == -1) {
        return Err(format!(
            "quota of {s:?}: QUOTA_SIZE and QUOTA_FILES are both -1 (counted in the user's \
             quota) or both 0 (unlimited) or more, got {quota_size} and {quota_files}"
        ));
    }
    Ok(VirtualFolderArg {
        virtual_path: virtual_path.to_string(),
        mapped_path: mapped_path.to_string(),
        quota_size,
        quota_files,
    })
}

/// `local`, or `s3://bucket/prefix` (with the endpoint when there is one).
fn storage(u: &Value) -> String {
    let fs = &u["filesystem"];
    if int(&fs["provider"]) != 1 {
        return "local".into();
    }
    let c = &fs["s3config"];
    let mut s = format!("s3://{}/{}", text(&c["bucket"]), text(&c["key_prefix"]));
    if let Some(e) = c["endpoint"].as_str().filter(|e| !e.is_empty()) {
        let _ = write!(s, " at {e}");
    }
    s
}

/// Parses a size: plain bytes, or a number (decimals allowed) with K/KB/M/MB/G/GB/T/TB
/// (powers of 1000) or KiB/MiB/GiB/TiB (powers of 1024), case-insensitive.
pub fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(format!("unknown size unit {unit:?} in {s:?}")),
    };
    let bad = || format!("invalid size {s:?} (examples: 1048576, 500MB, 1GB, 512MiB)");
    if num.is_empty() {
        return Err(bad());
    }
    let bytes = if let Ok(n) = num.parse::<u64>() {
        n.checked_mul(multiplier).ok_or_else(bad)?
    } else {
        let f: f64 = num.parse().map_err(|_| bad())?;
        let v = (f * multiplier as f64).round();
        if !v.is_finite() || v > i64::MAX as f64 {
            return Err(bad());
        }
        v as u64
    };
    i64::try_from(bytes).map_err(|_| bad())
}

/// Runs one `sftpgo api` command, printing its result.
pub async fn run(args: ApiArgs) -> Result<()> {
    let client = Client::new(&args)?;
    let out = execute(&client, &args).await?;
    print!("{out}");
    Ok(())
}

struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, Option<String>)>,
}

impl Client {
    fn new(args: &ApiArgs) -> Result<Self> {
        let base = args.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!(
                "--url must start with http:// or https://, got {:?}",
                args.url
            );
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(format!("sftpgo-cli/{}", crate::version::VERSION));
        if let Some(ca) = &args.ca_file {
            let pem = std::fs::read(ca)
                .with_context(|| format!("cannot read the CA file {}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("no PEM certificate in {}", ca.display()))?;
            if certs.is_empty() {
                bail!("no PEM certificate in {}", ca.display());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if args.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        let auth = match (&args.user, &args.password) {
            (Some(u), p) => Some((u.clone(), p.clone())),
            (None, Some(_)) => bail!("--password needs --user (or SFTPGO_API_USER)"),
            (None, None) => None,
        };
        Ok(Self { http, base, auth })
    }

    /// Sends a request to `/api/v1{path}`; returns the JSON of a 2xx answer, or an error
    /// carrying the API's message.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).query(query);
        if let Some((u, p)) = &self.auth {
            req = req.basic_auth(u, p.as_ref());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the API at {}: {}", self.base, error_chain(&e)))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| anyhow!("reading the answer of {method} {url}: {}", error_chain(&e)))?;
        let value: Option<Value> = serde_json::from_slice(&bytes).ok();
        if status.is_success() {
            return value.ok_or_else(|| anyhow!("{method} {url}: the answer is not JSON"));
        }
        let detail = value
            .as_ref()
            .map(|v| {
                let text = |k: &str| v[k].as_str().unwrap_or("").to_string();
                match (text("message"), text("error")) {
                    (m, e) if !m.is_empty() && !e.is_empty() => format!("{m}: {e}"),
                    (m, e) if m.is_empty() => e,
                    (m, _) => m,
                }
            })
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        bail!("{} {}", status.as_u16(), detail)
    }
}

/// "error: cause: cause" from a reqwest error's source chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            let _ = write!(s, ": {text}");
        }
        source = cause.source();
    }
    s
}

async fn execute(client: &Client, args: &ApiArgs) -> Result<String> {
    use reqwest::Method;
    let (value, render): (Value, fn(&Value) -> String) = match &args.command {
        ApiCommand::Version => (
            client.call(Method::GET, "/version", &[], None).await?,
            render_version,
        ),
        ApiCommand::Users { command } => match command {
            UsersCommand::List {
                limit,
                offset,
                order,
                username,
            } => {
                let mut q = Vec::new();
                if let Some(l) = limit {
                    q.push(("limit", l.to_string()));
                }
                if let Some(o) = offset {
                    q.push(("offset", o.to_string()));
                }
                if let Some(o) = order {
                    q.push(("order", o.to_ascii_uppercase()));
                }
                if let Some(u) = username {
                    q.push(("username", u.clone()));
                }
                (
                    client.call(Method::GET, "/user", &q, None).await?,
                    render_users,
                )
            }
            UsersCommand::Get { id } => (
                client
                    .call(Method::GET, &format!("/user/{id}"), &[], None)
                    .await?,
                render_user,
            ),
            UsersCommand::Add { username, fields } => {
                let mut body = fields.to_json();
                body.insert("username".into(), json!(username));
                (
                    client
                        .call(Method::POST, "/user", &[], Some(Value::Object(body)))
                        .await?,
                    render_user,
                )
            }
            UsersCommand::Update {
                id,
                fields,
                no_virtual_folders,
            } => {
                let mut body = fields.to_json();
                if *no_virtual_folders {
                    body.insert("virtual_folders".into(), json!([]));
                }
                if body.is_empty() {
                    bail!("nothing to update: give at least one option (see --help)");
                }
                (
                    client
                        .call(
                            Method::PUT,
                            &format!("/user/{id}"),
                            &[],
                            Some(Value::Object(body)),
                        )
                        .await?,
                    render_message,
                )
            }
            UsersCommand::Delete { id } => (
                client
                    .call(Method::DELETE, &format!("/user/{id}"), &[], None)
                    .await?,
                render_message,
            ),
        },
        ApiCommand::Folders { command } => match command {
            FoldersCommand::List {
                limit,
                offset,
                order,
                folder_path,
            } => {
                let mut q = Vec::new();
                if let Some(l) = limit {
                    q.push(("limit", l.to_string()));
                }
                if let Some(o) = offset {
                    q.push(("offset", o.to_string()));
                }
                if let Some(o) = order {
                    q.push(("order", o.to_ascii_uppercase()));
                }
                if let Some(p) = folder_path {
                    q.push(("folder_path", p.clone()));
                }
                (
                    client.call(Method::GET, "/folder", &q, None).await?,
                    render_folders,
                )
            }
            FoldersCommand::Get { mapped_path } => {
                let q = [("folder_path", mapped_path.clone())];
                let list = client.call(Method::GET, "/folder", &q, None).await?;
                let Some(folder) = list.as_array().and_then(|a| a.first()).cloned() else {
                    bail!("404 folder {mapped_path:?} not found");
                };
                (folder, render_folder)
            }
            FoldersCommand::Add {
                mapped_path,
                storage,
            } => {
                let mut body = Map::new();
                body.insert("mapped_path".into(), json!(mapped_path));
                if let Some(fs) = storage.to_json() {
                    body.insert("filesystem".into(), Value::Object(fs));
                }
                (
                    client
                        .call(Method::POST, "/folder", &[], Some(Value::Object(body)))
                        .await?,
                    render_folder,
                )
            }
            FoldersCommand::Update {
                mapped_path,
                storage,
            } => {
                let Some(fs) = storage.to_json() else {
                    bail!("nothing to update: give at least one storage option (see --help)");
                };
                let q = [("folder_path", mapped_path.clone())];
                (
                    client
                        .call(
                            Method::PUT,
                            "/folder",
                            &q,
                            Some(json!({ "filesystem": fs })),
                        )
                        .await?,
                    render_message,
                )
            }
            FoldersCommand::Delete { mapped_path } => {
                let q = [("folder_path", mapped_path.clone())];
                (
                    client.call(Method::DELETE, "/folder", &q, None).await?,
                    render_message,
                )
            }
        },
        ApiCommand::Connections { command } => match command {
            ConnectionsCommand::List => (
                client.call(Method::GET, "/connection", &[], None).await?,
                render_connections,
            ),
            ConnectionsCommand::Close { id } => {
                let id = percent_encode(id);
                (
                    client
                        .call(Method::DELETE, &format!("/connection/{id}"), &[], None)
                        .await?,
                    render_message,
                )
            }
        },
        ApiCommand::QuotaScan { command } => match command {
            QuotaScanCommand::List => (
                client.call(Method::GET, "/quota_scan", &[], None).await?,
                render_scans,
            ),
            QuotaScanCommand::Start { username } => (
                client
                    .call(
                        Method::POST,
                        "/quota_scan",
                        &[],
                        Some(json!({ "username": username })),
                    )
                    .await?,
                render_message,
            ),
            QuotaScanCommand::ListFolders => (
                client
                    .call(Method::GET, "/folder_quota_scan", &[], None)
                    .await?,
                render_folder_scans,
            ),
            QuotaScanCommand::StartFolder { mapped_path } => (
                client
                    .call(
                        Method::POST,
                        "/folder_quota_scan",
                        &[],
                        Some(json!({ "mapped_path": mapped_path })),
                    )
                    .await?,
                render_message,
            ),
        },
        ApiCommand::Defender { command } => match command {
            DefenderCommand::List => (
                client
                    .call(Method::GET, "/defender/hosts", &[], None)
                    .await?,
                render_hosts,
            ),
            DefenderCommand::Get { ip } => {
                let path = format!("/defender/hosts/{}", percent_encode(ip));
                (
                    client.call(Method::GET, &path, &[], None).await?,
                    render_host,
                )
            }
            DefenderCommand::Unban { ip } => {
                let path = format!("/defender/hosts/{}", percent_encode(ip));
                (
                    client.call(Method::DELETE, &path, &[], None).await?,
                    render_message,
                )
            }
        },
    };
    if args.json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&value)?));
    }
    Ok(render(&value))
}

/// Escapes a path segment (connection ids are hex, but any text must stay one segment).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Milliseconds since the epoch as UTC time; 0 = "-".
fn time(ms: i64) -> String {
    if ms <= 0 {
        return "-".into();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// Bytes in binary units.
fn size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// `used/limit` with 0 shown as unlimited.
fn usage(used: String, limit: i64, limit_text: String) -> String {
    if limit == 0 {
        format!("{used}/unlimited")
    } else {
        format!("{used}/{limit_text}")
    }
}

/// A plain text table, columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let _ = write!(l, "{cell:<w$}");
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn render_version(v: &Value) -> String {
    let mut s = format!("sftpgo {}", text(&v["version"]));
    let (commit, date) = (text(&v["commit_hash"]), text(&v["build_date"]));
    if !commit.is_empty() || !date.is_empty() {
        let _ = write!(s, " (commit {commit}, built {date})");
    }
    s.push('\n');
    s
}

fn permissions(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn render_users(v: &Value) -> String {
    let users = v.as_array().cloned().unwrap_or_default();
    if users.is_empty() {
        return "No users.\n".into();
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                text(&u["id"]),
                text(&u["username"]),
                text(&u["home_dir"]),
                permissions(&u["permissions"]),
                usage(
                    size(int(&u["used_quota_size"])),
                    int(&u["quota_size"]),
                    size(int(&u["quota_size"])),
                ),
                usage(
                    text(&u["used_quota_files"]),
                    int(&u["quota_files"]),
                    text(&u["quota_files"]),
                ),
                storage(u),
                u["virtual_folders"]
                    .as_array()
                    .map_or(0, Vec::len)
                    .to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "USERNAME",
            "HOME DIR",
            "PERMISSIONS",
            "QUOTA SIZE",
            "QUOTA FILES",
            "STORAGE",
            "FOLDERS",
        ],
        &rows,
    )
}

fn render_user(u: &Value) -> String {
    let limit = |k: &str, unit: &str| match int(&u[k]) {
        0 => "unlimited".to_string(),
        n => format!("{n}{unit}"),
    };
    let keys = u["public_keys"]
        .as_array()
        .map(|a| a.iter().map(text).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut rows = vec![
        ("id", text(&u["id"])),
        ("username", text(&u["username"])),
        ("home_dir", text(&u["home_dir"])),
        ("permissions", permissions(&u["permissions"])),
        ("uid/gid", format!("{}/{}", int(&u["uid"]), int(&u["gid"]))),
        ("max_sessions", limit("max_sessions", "")),
        (
            "quota_size",
            usage(
                size(int(&u["used_quota_size"])),
                int(&u["quota_size"]),
                size(int(&u["quota_size"])),
            ),
        ),
        (
            "quota_files",
            usage(
                text(&u["used_quota_files"]),
                int(&u["quota_files"]),
                text(&u["quota_files"]),
            ),
        ),
        ("last_quota_update", time(int(&u["last_quota_update"]))),
        ("upload_bandwidth", limit("upload_bandwidth", " KB/s")),
        ("download_bandwidth", limit("download_bandwidth", " KB/s")),
        ("storage", storage(u)),
    ];
    if keys.is_empty() {
        rows.push(("public_keys", "-".into()));
    }
    let folders: Vec<String> = u["virtual_folders"]
        .as_array()
        .map(|a| a.iter().map(virtual_folder).collect())
        .unwrap_or_default();
    if folders.is_empty() {
        rows.push(("virtual_folders", "-".into()));
    }
    // "download_bandwidth" is always there, longer than the list labels.
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<width$}  {v}");
    }
    for (label, list) in [("public_keys", &keys), ("virtual_folders", &folders)] {
        for (i, item) in list.iter().enumerate() {
            let label = if i == 0 { label } else { "" };
            let _ = writeln!(s, "{label:<width$}  {item}");
        }
    }
    s
}

/// One of a user's folders: `/virtual -> /mapped (quota)`.
fn virtual_folder(vf: &Value) -> String {
    let (qs, qf) = (int(&vf["quota_size"]), int(&vf["quota_files"]));
    let quota = if qs < 0 || qf < 0 {
        "in the user's quota".to_string()
    } else {
        let size = if qs == 0 {
            "unlimited".into()
        } else {
            size(qs)
        };
        let files = if qf == 0 {
            "unlimited".into()
        } else {
            qf.to_string()
        };
        format!("own quota: {size}, {files} files")
    };
    format!(
        "{} -> {} ({quota})",
        text(&vf["virtual_path"]),
        text(&vf["mapped_path"])
    )
}

/// A folder's used quota: `1.5 KiB, 3 files`.
fn folder_used(f: &Value) -> String {
    format!(
        "{}, {} files",
        size(int(&f["used_quota_size"])),
        int(&f["used_quota_files"])
    )
}

fn folder_users(f: &Value) -> String {
    let users = permissions(&f["users"]);
    if users.is_empty() { "-".into() } else { users }
}

fn render_folders(v: &Value) -> String {
    let folders = v.as_array().cloned().unwrap_or_default();
    if folders.is_empty() {
        return "No folders.\n".into();
    }
    let rows: Vec<Vec<String>> = folders
        .iter()
        .map(|f| {
            vec![
                text(&f["mapped_path"]),
                storage(f),
                folder_used(f),
                folder_users(f),
            ]
        })
        .collect();
    table(&["MAPPED PATH", "STORAGE", "USED", "USERS"], &rows)
}

fn render_folder(f: &Value) -> String {
    let rows = [
        ("id", text(&f["id"])),
        ("mapped_path", text(&f["mapped_path"])),
        ("storage", storage(f)),
        ("used", folder_used(f)),
        ("last_quota_update", time(int(&f["last_quota_update"]))),
        ("users", folder_users(f)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<width$}  {v}");
    }
    s
}

fn render_message(v: &Value) -> String {
    format!("{}\n", text(&v["message"]))
}

fn render_connections(v: &Value) -> String {
    let conns = v.as_array().cloned().unwrap_or_default();
    if conns.is_empty() {
        return "No connections.\n".into();
    }
    let rows: Vec<Vec<String>> = conns
        .iter()
        .map(|c| {
            let transfers = c["active_transfers"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            format!(
                                "{} {} ({})",
                                text(&t["operation_type"]),
                                text(&t["path"]),
                                size(int(&t["size"]))
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            vec![
                text(&c["connection_id"]),
                text(&c["username"]),
                text(&c["remote_address"]),
                text(&c["protocol"]),
                text(&c["client_version"]),
                time(int(&c["connection_time"])),
                time(int(&c["last_activity"])),
                if transfers.is_empty() {
                    "-".into()
                } else {
                    transfers
                },
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "USERNAME",
            "REMOTE ADDRESS",
            "PROTOCOL",
            "CLIENT",
            "CONNECTED (UTC)",
            "LAST ACTIVITY",
            "TRANSFERS",
        ],
        &rows,
    )
}

fn render_scans(v: &Value) -> String {
    let scans = v.as_array().cloned().unwrap_or_default();
    if scans.is_empty() {
        return "No quota scans running.\n".into();
    }
    let rows: Vec<Vec<String>> = scans
        .iter()
        .map(|s| vec![text(&s["username"]), time(int(&s["start_time"]))])
        .collect();
    table(&["USERNAME", "STARTED (UTC)"], &rows)
}

fn render_folder_scans(v: &Value) -> String {
    let scans = v.as_array().cloned().unwrap_or_default();
    if scans.is_empty() {
        return "No folder quota scans running.\n".into();
    }
    let rows: Vec<Vec<String>> = scans
        .iter()
        .map(|s| vec![text(&s["mapped_path"]), time(int(&s["start_time"]))])
        .collect();
    table(&["MAPPED PATH", "STARTED (UTC)"], &rows)
}

fn render_hosts(v: &Value) -> String {
    let hosts = v.as_array().cloned().unwrap_or_default();
    if hosts.is_empty() {
        return "No scored or banned hosts.\n".into();
    }
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let banned = h["ban_time"].as_str().unwrap_or("-").to_string();
            vec![text(&h["ip"]), int(&h["score"]).to_string(), banned]
        })
        .collect();
    table(&["IP", "SCORE", "BANNED UNTIL (UTC)"], &rows)
}

fn render_host(v: &Value) -> String {
    render_hosts(&Value::Array(vec![v.clone()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("1gb"), Ok(1_000_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("10k"), Ok(10_000));
        assert_eq!(parse_size("0"), Ok(0));
        for bad in ["", "GB", "1XB", "-1", "1.2.3MB", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_given_fields_are_sent() {
        let f = UserFields {
            quota_size: Some(5),
            permissions: Some("list, download".into()),
            ..Default::default()
        };
        assert_eq!(
            Value::Object(f.to_json()),
            json!({"quota_size": 5, "permissions": ["list", "download"]})
        );
        let f = UserFields {
            permissions: Some("*".into()),
            public_keys: vec!["k1".into(), "k2".into()],
            password: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            Value::Object(f.to_json()),
            json!({"permissions": ["*"], "public_keys": ["k1", "k2"], "password": ""})
        );
        assert!(UserFields::default().to_json().is_empty());
        // The storage options make one (partial) `filesystem` object.
        let f = UserFields {
            storage: StorageFields {
                fs_provider: Some("s3".into()),
                s3_bucket: Some("files".into()),
                s3_access_secret: Some("sec".into()),
                s3_upload_part_size: Some(8),
                s3_force_path_style: Some(true),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            Value::Object(f.to_json()),
            json!({"filesystem": {"provider": 1, "s3config": {"bucket": "files",
                "access_secret": "sec", "upload_part_size": 8, "force_path_style": true}}})
        );
        let f = UserFields {
            storage: StorageFields {
                s3_key_prefix: Some("u/".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            Value::Object(f.to_json()),
            json!({"filesystem": {"s3config": {"key_prefix": "u/"}}})
        );
    }

    #[test]
    fn storage_is_shown_without_secrets() {
        let local = json!({"filesystem": {"provider": 0}});
        assert_eq!(storage(&local), "local");
        assert_eq!(storage(&json!({})), "local");
        let s3 = json!({"filesystem": {"provider": 1, "s3config": {"bucket": "b",
            "key_prefix": "users/a/", "endpoint": "http://127.0.0.1:3900"}}});
        assert_eq!(storage(&s3), "s3://b/users/a/ at http://127.0.0.1:3900");
        let shown = render_user(&s3);
        assert!(
            shown.contains("storage") && shown.contains("s3://b/users/a/"),
            "{shown}"
        );
    }

    #[test]
    fn tables_align_and_handle_empty_lists() {
        let t = table(
            &["A", "LONGER"],
            &[vec!["xyz".into(), "1".into()], vec!["q".into(), "".into()]],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\nq\n");
        assert_eq!(render_users(&json!([])), "No users.\n");
        assert_eq!(render_connections(&json!([])), "No connections.\n");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(12), "12 B");
        assert_eq!(time(0), "-");
        assert_eq!(time(86_400_000), "1970-01-02 00:00:00");
        assert_eq!(percent_encode("ab/c d"), "ab%2Fc%20d");
    }

    fn vf(v: &str, m: &str, size: i64, files: i64) -> VirtualFolderArg {
        VirtualFolderArg {
            virtual_path: v.into(),
            mapped_path: m.into(),
            quota_size: size,
            quota_files: files,
        }
    }

    #[test]
    fn virtual_folder_values() {
        assert_eq!(
            parse_virtual_folder("/reports=/srv/shared/reports"),
            Ok(vf("/reports", "/srv/shared/reports", 0, 0))
        );
        assert_eq!(
            parse_virtual_folder("/in=/srv/drop:10G:1000"),
            Ok(vf("/in", "/srv/drop", 10_000_000_000, 1000))
        );
        assert_eq!(
            parse_virtual_folder("/in=/srv/drop:512MiB:0"),
            Ok(vf("/in", "/srv/drop", 512 << 20, 0))
        );
        assert_eq!(
            parse_virtual_folder("/in=/srv/drop:-1:-1"),
            Ok(vf("/in", "/srv/drop", -1, -1))
        );
        // The last two ':' fields are the quota: a mapped path may hold a ':'.
        assert_eq!(
            parse_virtual_folder("/x=/srv/a:b:0:5"),
            Ok(vf("/x", "/srv/a:b", 0, 5))
        );
        // '=' in the mapped path is kept (only the first one splits).
        assert_eq!(
            parse_virtual_folder("/x=/srv/a=b"),
            Ok(vf("/x", "/srv/a=b", 0, 0))
        );
        let cases = [
            ("/reports", "missing '='"),
            ("=/srv/x", "empty VIRTUAL_PATH"),
            ("/x=", "empty MAPPED_PATH"),
            ("/x=:1:1", "empty MAPPED_PATH"),
            ("/x=/srv/x:10G", "both"),
            ("/x=/srv/x:10XB:5", "unknown size unit"),
            ("/x=/srv/x:10G:many", "not a number of files"),
            ("/x=/srv/x:-1:5", "both -1"),
            ("/x=/srv/x:5:-1", "both -1"),
            ("/x=/srv/x:-2:-2", "is negative"),
            ("/x=/srv/x:0:-3", "below -1"),
        ];
        for (bad, why) in cases {
            let e = parse_virtual_folder(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains(bad) || e.contains("VIRTUAL_PATH"), "{bad}: {e}");
        }
    }

    #[test]
    fn virtual_folders_are_sent_and_parsed_by_clap() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            users: UsersCommand,
        }
        let cli = Cli::try_parse_from([
            "t",
            "update",
            "7",
            "--virtual-folder",
            "/a=/srv/a",
            "--virtual-folder",
            "/b=/srv/b:-1:-1",
            "--s3-bucket",
            "bk",
        ])
        .unwrap();
        let UsersCommand::Update { fields, .. } = cli.users else {
            panic!("not update");
        };
        assert_eq!(
            Value::Object(fields.to_json()),
            json!({
                "filesystem": {"s3config": {"bucket": "bk"}},
                "virtual_folders": [
                    {"virtual_path": "/a", "mapped_path": "/srv/a", "quota_size": 0, "quota_files": 0},
                    {"virtual_path": "/b", "mapped_path": "/srv/b", "quota_size": -1, "quota_files": -1},
                ]
            })
        );
        let e = Cli::try_parse_from(["t", "add", "u", "--virtual-folder", "/a"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("--virtual-folder") && e.contains("missing '='"),
            "{e}"
        );
        let e = Cli::try_parse_from([
            "t",
            "update",
            "7",
            "--no-virtual-folders",
            "--virtual-folder",
            "/a=/b",
        ])
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("cannot be used with"), "{e}");
        // --no-virtual-folders is update's only.
        assert!(Cli::try_parse_from(["t", "add", "u", "--no-virtual-folders"]).is_err());
    }

    #[test]
    fn folder_storage_options_are_shared_with_users() {
        let fs = StorageFields {
            fs_provider: Some("local".into()),
            ..Default::default()
        };
        assert_eq!(Value::Object(fs.to_json().unwrap()), json!({"provider": 0}));
        assert_eq!(StorageFields::default().to_json(), None);
    }

    #[test]
    fn folder_path_is_encoded_in_the_query() {
        let req = reqwest::Client::new()
            .get("http://h/api/v1/folder")
            .query(&[("folder_path", "/a b/c&d=e%+")])
            .build()
            .unwrap();
        assert_eq!(
            req.url().query(),
            Some("folder_path=%2Fa+b%2Fc%26d%3De%25%2B")
        );
    }

    #[test]
    fn folders_and_users_folders_render() {
        assert_eq!(render_folders(&json!([])), "No folders.\n");
        assert_eq!(
            render_folder_scans(&json!([])),
            "No folder quota scans running.\n"
        );
        let folders = json!([
            {"id": 1, "mapped_path": "/srv/shared", "used_quota_size": 1536,
             "used_quota_files": 3, "last_quota_update": 0,
             "filesystem": {"provider": 0}, "users": ["alice", "bob"]},
            {"id": 2, "mapped_path": "/s3/archive", "used_quota_size": 0,
             "used_quota_files": 0, "last_quota_update": 0, "users": [],
             "filesystem": {"provider": 1, "s3config": {"bucket": "arch",
               "key_prefix": "a/", "endpoint": "http://127.0.0.1:3900"}}}
        ]);
        assert_eq!(
            render_folders(&folders),
            [
                "MAPPED PATH  STORAGE                                USED              USERS\n",
                "/srv/shared  local                                  1.5 KiB, 3 files  alice,bob\n",
                "/s3/archive  s3://arch/a/ at http://127.0.0.1:3900  0 B, 0 files      -\n",
            ]
            .concat()
        );
        let one = render_folder(&folders[1]);
        assert!(
            one.contains("mapped_path        /s3/archive\n")
                && one.contains("storage            s3://arch/a/ at http://127.0.0.1:3900\n")
                && one.contains("users              -\n"),
            "{one}"
        );
        assert_eq!(
            render_folder_scans(&json!([{"mapped_path": "/srv/x", "start_time": 86_400_000}])),
            "MAPPED PATH  STARTED (UTC)\n/srv/x       1970-01-02 00:00:00\n"
        );
        let user = json!({"id": 1, "username": "u", "virtual_folders": [
            {"virtual_path": "/r", "mapped_path": "/srv/r", "quota_size": -1, "quota_files": -1},
            {"virtual_path": "/d", "mapped_path": "/srv/d", "quota_size": 1_073_741_824, "quota_files": 0},
            {"virtual_path": "/e", "mapped_path": "/srv/e", "quota_size": 0, "quota_files": 0},
        ]});
        let shown = render_user(&user);
        assert!(
            shown.contains("virtual_folders     /r -> /srv/r (in the user's quota)\n")
                && shown.contains(
                    "\n                    /d -> /srv/d (own quota: 1.0 GiB, unlimited files)\n"
                )
                && shown.contains("/e -> /srv/e (own quota: unlimited, unlimited files)\n"),
            "{shown}"
        );
        assert!(render_user(&json!({})).contains("virtual_folders     -\n"));
        let list = render_users(&Value::Array(vec![user]));
        assert!(
            list.lines().next().unwrap().ends_with("STORAGE  FOLDERS"),
            "{list}"
        );
        assert!(
            list.lines().nth(1).unwrap().ends_with("local    3"),
            "{list}"
        );
    }
}
