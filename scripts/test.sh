#!/usr/bin/env bash
# Installs what the tests need, then runs them: the README's test command, and what
# .ci/run runs. Works in a fresh clone on a fresh Debian machine with only Rust installed
# (as root, or with sudo for the Debian packages).
#
# Needed: the OpenSSH client (sftp, ssh-keygen) and, for the interoperability tests, rclone,
# lftp, curl (libssh2) and paramiko; Debian's chromium and chromium-driver for the web
# admin's browser tests; Garage (crates.io) for the S3 storage tests;
# cargo-nextest runs the tests. Tests that need
# PostgreSQL (127.0.0.1:5432) or MariaDB (127.0.0.1:3306) skip, saying so, when those
# servers do not answer, unless SFTPGO_REQUIRE_DATABASES=1. Extra arguments go to
# `cargo nextest run` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

need_apt=()
command -v sftp >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || need_apt+=(openssh-client)
command -v rclone >/dev/null 2>&1 || need_apt+=(rclone)
command -v lftp >/dev/null 2>&1 || need_apt+=(lftp)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# Headless Chromium and its WebDriver, for the web admin's browser tests.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# paramiko: from PyPI where pip may install, else Debian's package (a Debian Python without
# pip, or one that refuses system-wide installs).
if ! python3 -c 'import paramiko' 2>/dev/null; then
  python3 -m pip install -q paramiko 2>/dev/null ||
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-paramiko
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
# Garage, a real S3-compatible store, for the S3 storage tests (a separate server, never
# linked; about 8 minutes to build once per machine).
if ! command -v garage >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/garage" ]; then
  cargo install --locked garage
fi
export SFTPGO_REQUIRE_S3=1

# Every client is installed now: a missing one fails its test instead of skipping it.
export SFTPGO_REQUIRE_CLIENTS=1
export SFTPGO_REQUIRE_BROWSER=1
exec cargo nextest run --workspace --no-fail-fast "$@"
