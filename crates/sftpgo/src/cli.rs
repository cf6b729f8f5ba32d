//! Command line: the seed's `sftpgo serve` flags, each defaulting from an env variable.

use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sftpgo",
    about = "Full featured SFTP server with virtual accounts",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Print the version and exit.
    #[arg(short = 'v', long = "version", global = false)]
    pub version: bool,
}

// Parsed once per process: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the SFTP server.
    Serve(ServeArgs),
    /// Create or upgrade the data provider's schema, then exit (for deploy pipelines).
    Initprovider(ServeArgs),
    /// Client of a running server's REST API (users, connections, quota scans).
    Api(crate::api_client::ApiArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory holding the config file, host keys and the SQLite/bolt database.
    #[arg(
        short = 'c',
        long = "config-dir",
        env = "SFTPGO_CONFIG_DIR",
        default_value = "."
    )]
    pub config_dir: PathBuf,
    /// Config file name without extension (.json, .yaml, .yml and .toml are tried).
    #[arg(
        short = 'f',
        long = "config-file",
        env = "SFTPGO_CONFIG_FILE",
        default_value = "sftpgo"
    )]
    pub config_file: String,
    #[command(flatten)]
    pub log: LogOptions,
}

#[derive(Debug, Clone, Args)]
pub struct LogOptions {
    /// Log file; "-" or "" logs to stdout.
    #[arg(
        short = 'l',
        long = "log-file-path",
        env = "SFTPGO_LOG_FILE_PATH",
        default_value = "sftpgo.log"
    )]
    pub file_path: String,
    /// Maximum size in MB of the log file before it is rotated.
    #[arg(
        short = 's',
        long = "log-max-size",
        env = "SFTPGO_LOG_MAX_SIZE",
        default_value_t = 10
    )]
    pub max_size_mb: u64,
    /// Maximum number of rotated log files to keep.
    #[arg(
        short = 'b',
        long = "log-max-backups",
        env = "SFTPGO_LOG_MAX_BACKUPS",
        default_value_t = 5
    )]
    pub max_backups: usize,
    /// Maximum days to keep rotated log files.
    #[arg(
        short = 'a',
        long = "log-max-age",
        env = "SFTPGO_LOG_MAX_AGE",
        default_value_t = 28
    )]
    pub max_age_days: u64,
    /// Gzip rotated log files. Booleans take true/false, 1/0, yes/no, on/off (like Go's
    /// flag parsing); the bare flag means true.
    #[arg(short = 'z', long = "log-compress", env = "SFTPGO_LOG_COMPRESS", default_value_t = false,
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub compress: bool,
    /// Debug-level logging (false = info).
    #[arg(short = 'v', long = "log-verbose", env = "SFTPGO_LOG_VERBOSE", default_value_t = true,
          action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let mut v = vec!["sftpgo", "serve"];
        v.extend_from_slice(args);
        match Cli::try_parse_from(v).unwrap().command {
            Some(Command::Serve(s)) => s,
            other => panic!("expected serve, got {other:?}"),
        }
    }

    #[test]
    fn initprovider_takes_the_config_flags() {
        match Cli::try_parse_from(["sftpgo", "initprovider", "-c", "/etc/sftpgo", "-f", "conf"])
            .unwrap()
            .command
        {
            Some(Command::Initprovider(a)) => {
                assert_eq!(a.config_dir, PathBuf::from("/etc/sftpgo"));
                assert_eq!(a.config_file, "conf");
            }
            other => panic!("expected initprovider, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_short_flags() {
        let s = serve(&[]);
        assert_eq!(s.config_dir, PathBuf::from("."));
        assert_eq!(s.config_file, "sftpgo");
        assert_eq!(s.log.file_path, "sftpgo.log");
        assert_eq!(
            (s.log.max_size_mb, s.log.max_backups, s.log.max_age_days),
            (10, 5, 28)
        );
        assert!(!s.log.compress && s.log.verbose);
        let s = serve(&[
            "-c",
            "/etc/sftpgo",
            "-f",
            "conf",
            "-l",
            "-",
            "-s",
            "1",
            "-b",
            "2",
            "-a",
            "3",
            "-z",
            "-v",
            "false",
        ]);
        assert_eq!(s.config_dir, PathBuf::from("/etc/sftpgo"));
        assert_eq!(s.config_file, "conf");
        assert_eq!(s.log.file_path, "-");
        assert_eq!(
            (s.log.max_size_mb, s.log.max_backups, s.log.max_age_days),
            (1, 2, 3)
        );
        assert!(s.log.compress && !s.log.verbose);
        assert!(!serve(&["--log-verbose=false"]).log.verbose);
        assert!(!serve(&["--log-verbose", "false"]).log.verbose);
        assert!(
            serve(&["--log-compress=true", "--log-verbose"])
                .log
                .compress
        );
        assert!(Cli::try_parse_from(["sftpgo", "serve", "--log-verbose=maybe"]).is_err());
        assert!(serve(&["-v"]).log.verbose);
    }

    #[test]
    fn long_flags() {
        let s = serve(&[
            "--config-dir=/c",
            "--config-file",
            "x",
            "--log-file-path",
            "",
            "--log-max-size=7",
            "--log-max-backups=8",
            "--log-max-age=9",
        ]);
        assert_eq!(
            (s.config_dir, s.config_file),
            (PathBuf::from("/c"), "x".into())
        );
        assert_eq!(s.log.file_path, "");
        assert_eq!(
            (s.log.max_size_mb, s.log.max_backups, s.log.max_age_days),
            (7, 8, 9)
        );
        assert!(Cli::try_parse_from(["sftpgo"]).unwrap().command.is_none());
    }

    #[test]
    fn boolish_values() {
        assert!(!serve(&["-v", "0"]).log.verbose);
        assert!(!serve(&["--log-verbose=off"]).log.verbose);
        assert!(serve(&["--log-verbose=yes"]).log.verbose);
        assert!(serve(&["--log-compress=1"]).log.compress);
        assert!(!serve(&["-z", "no"]).log.compress);
        // A bare boolean flag followed by another flag keeps its implied true.
        let s = serve(&["-z", "-c", "/x"]);
        assert!(s.log.compress);
        assert_eq!(s.config_dir, PathBuf::from("/x"));
        assert!(Cli::try_parse_from(["sftpgo", "serve", "-s", "ten"]).is_err());
        assert!(Cli::try_parse_from(["sftpgo", "serve", "--no-such-flag"]).is_err());
    }

    #[test]
    fn logging_reexports_the_same_options() {
        let s = serve(&["-l", "-"]);
        let opts: &crate::logging::LogOptions = &s.log;
        assert_eq!(opts.file_path, "-");
    }

    #[test]
    fn api_subcommands_parse() {
        use crate::api_client::{ApiCommand, UsersCommand};
        let cli = Cli::try_parse_from([
            "sftpgo",
            "api",
            "--url",
            "https://h:1",
            "--user",
            "admin",
            "--password",
            "apipw",
            "users",
            "add",
            "alice",
            "--password",
            "pw",
            "--public-key",
            "k1",
            "--public-key",
            "k2",
            "--permissions",
            "*",
            "--quota-size",
            "1GB",
            "--json",
        ])
        .unwrap();
        let Some(Command::Api(a)) = cli.command else {
            panic!("expected api");
        };
        assert_eq!(a.url, "https://h:1");
        assert_eq!(
            (a.user.as_deref(), a.password.as_deref()),
            (Some("admin"), Some("apipw"))
        );
        assert!(a.json);
        match a.command {
            ApiCommand::Users {
                command: UsersCommand::Add { username, fields },
            } => {
                assert_eq!(username, "alice");
                assert_eq!(fields.password.as_deref(), Some("pw"));
                assert_eq!(fields.public_keys, ["k1", "k2"]);
                assert_eq!(fields.quota_size, Some(1_000_000_000));
                assert_eq!(fields.permissions.as_deref(), Some("*"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            Cli::try_parse_from(["sftpgo", "api", "users", "add", "a", "--quota-size", "1XB"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["sftpgo", "api", "users", "get", "x"]).is_err());
        assert!(Cli::try_parse_from(["sftpgo", "api", "quota-scan", "start", "bob"]).is_ok());
        assert!(Cli::try_parse_from(["sftpgo", "api", "connections", "close", "ab12"]).is_ok());
    }

    #[test]
    fn version_flag() {
        assert!(Cli::try_parse_from(["sftpgo", "-v"]).unwrap().version);
        assert!(
            Cli::try_parse_from(["sftpgo", "--version"])
                .unwrap()
                .version
        );
    }
}
