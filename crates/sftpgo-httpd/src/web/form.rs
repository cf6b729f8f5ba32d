//! Posted forms: `application/x-www-form-urlencoded` bodies, and the user form's fields
//! turned into a [`User`] for the provider, whose validation decides (nothing here
//! repeats its rules: only text that is not a number is refused before it is asked).

use std::collections::BTreeMap;

use sftpgo_provider::filesystem::{Filesystem, FsProvider, Secret};
use sftpgo_provider::{Folder, Permission, ProviderError, User, VirtualFolder};

/// The fields of a posted form, in order (a checkbox group repeats its name).
#[derive(Debug, Default, Clone)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Self {
        Self(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// The permission names, as the API spells them.
pub(crate) const PERMISSIONS: [&str; 8] = [
    "*",
    "list",
    "download",
    "upload",
    "delete",
    "rename",
    "create_dirs",
    "create_symlinks",
];

/// The user form's number fields: (form name = the API's JSON path, label, unit).
pub(crate) const NUMBER_FIELDS: [(&str, &str, &str); 8] = [
    ("uid", "UID", "0: the server's own"),
    ("gid", "GID", "0: the server's own"),
    ("max_sessions", "Max sessions", "0: unlimited"),
    ("quota_size", "Quota size", "bytes, 0: unlimited"),
    ("quota_files", "Quota files", "files, 0: unlimited"),
    ("upload_bandwidth", "Upload bandwidth", "KB/s, 0: unlimited"),
    (
        "download_bandwidth",
        "Download bandwidth",
        "KB/s, 0: unlimited",
    ),
    (
        "filesystem.s3config.upload_part_size",
        "Upload part size",
        "MiB, 0: 5",
    ),
];

/// The S3 text fields (the secret is apart: it is never shown).
pub(crate) const S3_TEXT_FIELDS: [(&str, &str); 6] = [
    ("filesystem.s3config.bucket", "Bucket"),
    ("filesystem.s3config.region", "Region"),
    ("filesystem.s3config.endpoint", "Endpoint"),
    ("filesystem.s3config.access_key", "Access key"),
    ("filesystem.s3config.key_prefix", "Key prefix"),
    ("filesystem.s3config.storage_class", "Storage class"),
];

pub(crate) const UPLOAD_CONCURRENCY: &str = "filesystem.s3config.upload_concurrency";
pub(crate) const ACCESS_SECRET: &str = "filesystem.s3config.access_secret";
pub(crate) const FORCE_PATH_STYLE: &str = "filesystem.s3config.force_path_style";
pub(crate) const PROVIDER: &str = "filesystem.provider";

/// What the user form shows: text by field name (never a password or secret),
/// the permissions checked, and errors by field name ("" for the form as a whole).
#[derive(Debug, Default, Clone)]
pub(crate) struct UserValues {
    pub text: BTreeMap<String, String>,
    pub permissions: Vec<String>,
    pub errors: BTreeMap<String, String>,
    /// The user's virtual folder rows, as shown or typed (the form adds empty ones).
    pub folders: Vec<FolderRow>,
}

/// One row of the user form's virtual folders, as text.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FolderRow {
    pub virtual_path: String,
    pub mapped_path: String,
    pub quota_size: String,
    pub quota_files: String,
}

/// The form names of a folder row's fields (repeated once per row, in order).
pub(crate) const VF_VIRTUAL_PATH: &str = "vf_virtual_path";
pub(crate) const VF_MAPPED_PATH: &str = "vf_mapped_path";
pub(crate) const VF_QUOTA_SIZE: &str = "vf_quota_size";
pub(crate) const VF_QUOTA_FILES: &str = "vf_quota_files";
/// The submit button that shows the form again with one more empty folder row.
pub(crate) const ADD_FOLDER_ROW: &str = "add_folder_row";

impl FolderRow {
    fn of(vf: &VirtualFolder) -> Self {
        Self {
            virtual_path: vf.virtual_path.clone(),
            mapped_path: vf.mapped_path.clone(),
            quota_size: vf.quota_size.to_string(),
            quota_files: vf.quota_files.to_string(),
        }
    }

    fn is_empty(&self) -> bool {
        self.virtual_path.trim().is_empty()
            && self.mapped_path.trim().is_empty()
            && self.quota_size.trim().is_empty()
            && self.quota_files.trim().is_empty()
    }

    /// The rows of a posted form.
    fn of_form(form: &Form) -> Vec<Self> {
        let (v, m, s, f) = (
            form.all(VF_VIRTUAL_PATH),
            form.all(VF_MAPPED_PATH),
            form.all(VF_QUOTA_SIZE),
            form.all(VF_QUOTA_FILES),
        );
        let at = |l: &[&str], i: usize| l.get(i).map_or(String::new(), |x| x.to_string());
        (0..v.len().max(m.len()).max(s.len()).max(f.len()))
            .map(|i| Self {
                virtual_path: at(&v, i),
                mapped_path: at(&m, i),
                quota_size: at(&s, i),
                quota_files: at(&f, i),
            })
            .collect()
    }
}

impl UserValues {
    pub fn value(&self, name: &str) -> &str {
        self.text.get(name).map_or("", String::as_str)
    }

    pub fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name).map(String::as_str)
    }

    /// The values of a stored (or new) user.
    pub fn of_user(u: &User) -> Self {
        let mut text = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            text.insert(k.to_string(), v);
        };
        put("username", u.username.clone());
        put("home_dir", u.home_dir.clone());
        put("public_keys", u.public_keys.join("\n"));
        for (name, value) in [
            ("uid", u.uid),
            ("gid", u.gid),
            ("max_sessions", u.max_sessions),
            ("quota_size", u.quota_size),
            ("quota_files", u.quota_files),
            ("upload_bandwidth", u.upload_bandwidth),
            ("download_bandwidth", u.download_bandwidth),
        ] {
            put(name, value.to_string());
        }
        put_filesystem(&mut text, &u.filesystem);
        let permissions = u
            .permissions
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        Self {
            text,
            permissions,
            errors: BTreeMap::new(),
            folders: u.virtual_folders.iter().map(FolderRow::of).collect(),
        }
    }

    /// The values of a stored folder (or a new one).
    pub fn of_folder(f: &Folder) -> Self {
        let mut text = BTreeMap::new();
        text.insert("mapped_path".to_string(), f.mapped_path.clone());
        put_filesystem(&mut text, &f.filesystem);
        Self {
            text,
            ..Self::default()
        }
    }

    /// The posted folder form, to show again with the errors.
    pub fn of_folder_form(form: &Form) -> Self {
        let mut text = BTreeMap::new();
        for name in ["mapped_path"].into_iter().chain(FILESYSTEM_FIELDS) {
            text.insert(name.to_string(), form.get(name).to_string());
        }
        if form.has(FORCE_PATH_STYLE) {
            text.insert(FORCE_PATH_STYLE.to_string(), "on".into());
        }
        Self {
            text,
            ..Self::default()
        }
    }

    /// The posted values, to show again with the errors.
    pub fn of_form(form: &Form) -> Self {
        let mut text = BTreeMap::new();
        let names = [
            "username",
            "home_dir",
            "public_keys",
            PROVIDER,
            UPLOAD_CONCURRENCY,
        ]
        .into_iter()
        .chain(NUMBER_FIELDS.iter().map(|f| f.0))
        .chain(S3_TEXT_FIELDS.iter().map(|f| f.0));
        for name in names {
            text.insert(name.to_string(), form.get(name).to_string());
        }
        if form.has(FORCE_PATH_STYLE) {
            text.insert(FORCE_PATH_STYLE.to_string(), "on".into());
        }
        Self {
            text,
            permissions: form
                .all("permissions")
                .into_iter()
                .map(str::to_string)
                .collect(),
            errors: BTreeMap::new(),
            folders: FolderRow::of_form(form)
                .into_iter()
                .filter(|r| !r.is_empty())
                .collect(),
        }
    }

    /// Puts a provider refusal next to the field it names.
    pub fn add_provider_error(&mut self, e: &ProviderError) {
        let (field, text) = match e {
            ProviderError::InvalidField { field, reason } => (field.to_string(), reason.clone()),
            ProviderError::AlreadyExists(_) => ("username".to_string(), e.to_string()),
            ProviderError::FolderExists(_) => ("mapped_path".to_string(), e.to_string()),
            ProviderError::Validation(m) => (validation_field(m).to_string(), m.clone()),
            other => (String::new(), other.to_string()),
        };
        self.errors.insert(field, text);
    }
}

/// The field a [`ProviderError::Validation`] message is about, when it names one; ""
/// for the form as a whole.
fn validation_field(message: &str) -> &'static str {
    if message.starts_with("Could not parse key") {
        "public_keys"
    } else if message.starts_with("Please grant some permissions") {
        "permissions"
    } else if message.starts_with("password hash refused") {
        "password"
    } else {
        ""
    }
}

/// Applies the posted user form onto `base` (the stored user, or a default one).
/// The password: empty keeps the stored one (or sets none for a new user), unless
/// `clear_password` is checked. The S3 secret: empty is handed over empty, so the
/// provider keeps the stored one under its rule, as for the REST PUT. Text that is not
/// a number is refused here, by field, before the provider is asked.
pub(crate) fn apply_user_form(form: &Form, mut base: User) -> Result<User, UserValues> {
    let mut values = UserValues::of_form(form);
    base.username = form.get("username").trim().to_string();
    base.home_dir = form.get("home_dir").trim().to_string();
    base.public_keys = form
        .get("public_keys")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    let password = form.get("password");
    if !password.is_empty() {
        base.password = Some(password.to_string());
    } else if form.has("clear_password") {
        base.password = None;
    }
    let mut number = |name: &str| number(form, name, &mut values.errors);
    base.uid = number("uid");
    base.gid = number("gid");
    base.max_sessions = number("max_sessions");
    base.quota_size = number("quota_size");
    base.quota_files = number("quota_files");
    base.upload_bandwidth = number("upload_bandwidth");
    base.download_bandwidth = number("download_bandwidth");
    apply_filesystem(form, &mut base.filesystem, &mut values.errors);
    // A form without folder rows (not ours) leaves the folders as they are.
    if form.has(VF_VIRTUAL_PATH) {
        base.virtual_folders = virtual_folders(form, &mut values.errors);
    }
    base.permissions.clear();
    for name in form.all("permissions") {
        match serde_json::from_value::<Permission>(serde_json::Value::String(name.into())) {
            Ok(p) => base.permissions.push(p),
            Err(_) => {
                values
                    .errors
                    .insert("permissions".into(), format!("unknown permission {name:?}"));
            }
        }
    }
    if values.errors.is_empty() {
        Ok(base)
    } else {
        Err(values)
    }
}

/// A whole number; empty is 0. Other text is refused by field.
fn number(form: &Form, name: &str, errors: &mut BTreeMap<String, String>) -> i64 {
    let raw = form.get(name).trim();
    if raw.is_empty() {
        return 0;
    }
    raw.parse().unwrap_or_else(|_| {
        errors.insert(
            name.to_string(),
            format!("must be a whole number, got {raw:?}"),
        );
        0
    })
}

/// The storage fields shown as text (never the secret).
const FILESYSTEM_FIELDS: [&str; 9] = [
    PROVIDER,
    "filesystem.s3config.bucket",
    "filesystem.s3config.region",
    "filesystem.s3config.endpoint",
    "filesystem.s3config.access_key",
    "filesystem.s3config.key_prefix",
    "filesystem.s3config.storage_class",
    "filesystem.s3config.upload_part_size",
    UPLOAD_CONCURRENCY,
];

/// The storage of a user or a folder as the form's text.
fn put_filesystem(text: &mut BTreeMap<String, String>, fs: &Filesystem) {
    let s3 = &fs.s3config;
    let mut put = |k: &str, v: String| {
        text.insert(k.to_string(), v);
    };
    put(
        PROVIDER,
        match fs.provider {
            FsProvider::Local => "0".into(),
            FsProvider::S3 => "1".into(),
        },
    );
    put("filesystem.s3config.bucket", s3.bucket.clone());
    put("filesystem.s3config.region", s3.region.clone());
    put("filesystem.s3config.endpoint", s3.endpoint.clone());
    put("filesystem.s3config.access_key", s3.access_key.clone());
    put("filesystem.s3config.key_prefix", s3.key_prefix.clone());
    put(
        "filesystem.s3config.storage_class",
        s3.storage_class.clone(),
    );
    put(
        "filesystem.s3config.upload_part_size",
        s3.upload_part_size.to_string(),
    );
    put(UPLOAD_CONCURRENCY, s3.upload_concurrency.to_string());
    if s3.force_path_style {
        put(FORCE_PATH_STYLE, "on".into());
    }
}

/// The posted storage fields onto `fs` (of a user or a folder). An empty secret is
/// handed over empty: the provider keeps the stored one under its rule.
fn apply_filesystem(form: &Form, fs: &mut Filesystem, errors: &mut BTreeMap<String, String>) {
    let s3 = &mut fs.s3config;
    s3.upload_part_size = number(form, "filesystem.s3config.upload_part_size", errors);
    s3.upload_concurrency = number(form, UPLOAD_CONCURRENCY, errors);
    let text = |name: &str| form.get(name).trim().to_string();
    s3.bucket = text("filesystem.s3config.bucket");
    s3.region = text("filesystem.s3config.region");
    s3.endpoint = text("filesystem.s3config.endpoint");
    s3.access_key = text("filesystem.s3config.access_key");
    s3.key_prefix = text("filesystem.s3config.key_prefix");
    s3.storage_class = text("filesystem.s3config.storage_class");
    s3.force_path_style = form.has(FORCE_PATH_STYLE);
    s3.access_secret = Secret::new(form.get(ACCESS_SECRET));
    match form.get(PROVIDER) {
        "" | "0" => fs.provider = FsProvider::Local,
        "1" => fs.provider = FsProvider::S3,
        other => {
            errors.insert(
                PROVIDER.to_string(),
                format!("must be local (0) or S3 (1), got {other:?}"),
            );
        }
    }
}

/// The user's virtual folders from the posted rows: an empty row is none (that is how
/// one is removed); an empty quota is -1 (counted in the user's quota). The provider
/// checks the rest and creates a local folder for an unknown mapped path.
fn virtual_folders(form: &Form, errors: &mut BTreeMap<String, String>) -> Vec<VirtualFolder> {
    let mut list = Vec::new();
    for row in FolderRow::of_form(form) {
        if row.is_empty() {
            continue;
        }
        let mut quota = |raw: &str, name: &str| -> i64 {
            let raw = raw.trim();
            if raw.is_empty() {
                return -1;
            }
            raw.parse().unwrap_or_else(|_| {
                errors.insert(
                    format!("virtual_folders.{name}"),
                    format!(
                        "must be a whole number, got {raw:?} for {:?}",
                        row.virtual_path
                    ),
                );
                -1
            })
        };
        let quota_size = quota(&row.quota_size, "quota_size");
        let quota_files = quota(&row.quota_files, "quota_files");
        list.push(VirtualFolder {
            virtual_path: row.virtual_path.trim().to_string(),
            mapped_path: row.mapped_path.trim().to_string(),
            quota_size,
            quota_files,
            filesystem: None,
        });
    }
    list
}

/// Applies the posted folder form onto `base` (the stored folder, or a default one):
/// the mapped path of a new folder, the storage of any.
pub(crate) fn apply_folder_form(
    form: &Form,
    mut base: Folder,
    new: bool,
) -> Result<Folder, UserValues> {
    let mut values = UserValues::of_folder_form(form);
    if new {
        base.mapped_path = form.get("mapped_path").trim().to_string();
    } else {
        values
            .text
            .insert("mapped_path".into(), base.mapped_path.clone());
    }
    apply_filesystem(form, &mut base.filesystem, &mut values.errors);
    if values.errors.is_empty() {
        Ok(base)
    } else {
        Err(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_a_user_and_bad_numbers_name_their_field() {
        let form = Form::parse(
            b"username=+bob+&home_dir=%2Fsrv%2Fbob&public_keys=k1%0D%0A%0D%0Ak2&permissions=list&permissions=upload\
              &quota_size=100&uid=&filesystem.provider=1&filesystem.s3config.bucket=b\
              &filesystem.s3config.force_path_style=on&filesystem.s3config.access_secret=",
        );
        let u = apply_user_form(&form, User::default()).unwrap();
        assert_eq!(u.username, "bob");
        assert_eq!(u.home_dir, "/srv/bob");
        assert_eq!(u.public_keys, ["k1", "k2"]);
        assert_eq!(u.permissions, [Permission::List, Permission::Upload]);
        assert_eq!((u.quota_size, u.uid), (100, 0));
        assert_eq!(u.filesystem.provider, FsProvider::S3);
        assert!(u.filesystem.s3config.force_path_style);
        assert!(u.filesystem.s3config.access_secret.is_empty());
        // An empty password keeps the stored one; the clear box removes it.
        let stored = User {
            password: Some("$argon2id$hash".into()),
            ..User::default()
        };
        let kept = apply_user_form(&Form::parse(b"password="), stored.clone()).unwrap();
        assert_eq!(kept.password.as_deref(), Some("$argon2id$hash"));
        let cleared =
            apply_user_form(&Form::parse(b"password=&clear_password=on"), stored).unwrap();
        assert_eq!(cleared.password, None);
        let bad = apply_user_form(
            &Form::parse(b"quota_files=ten&permissions=fly&username=x"),
            User::default(),
        )
        .unwrap_err();
        assert!(bad.error("quota_files").unwrap().contains("whole number"));
        assert!(bad.error("permissions").unwrap().contains("fly"));
        assert_eq!(bad.value("quota_files"), "ten");
        assert_eq!(bad.value("username"), "x");
    }

    #[test]
    fn provider_errors_land_on_their_field() {
        let mut v = UserValues::default();
        v.add_provider_error(&ProviderError::InvalidField {
            field: "home_dir",
            reason: "must be absolute".into(),
        });
        v.add_provider_error(&ProviderError::Validation(
            "Could not parse key nr. 0: bad".into(),
        ));
        v.add_provider_error(&ProviderError::Validation(
            "Mandatory parameters missing".into(),
        ));
        assert_eq!(v.error("home_dir"), Some("must be absolute"));
        assert!(v.error("public_keys").unwrap().contains("key nr. 0"));
        assert_eq!(v.error(""), Some("Mandatory parameters missing"));
    }
}
