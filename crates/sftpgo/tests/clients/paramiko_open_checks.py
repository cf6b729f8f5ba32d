"""paramiko checks of what a client sees at once, driven by tests/client_view.rs.

Usage:
  paramiko_open_checks.py usage PORT USER PASSWORD API_URL USER_ID CLI
      Uploads, overwrites, renames and removes files, and after each answer reads the
      user's used quota through GET /api/v1/user/{id}, GET /api/v1/user?username= and
      `sftpgo api users get` (CLI is the sftpgo binary): prints one line per step,
      "step size files" for each of the three reads, which the Rust test checks.
  refusals PORT USER PASSWORD
      The OPENs for writing the server must refuse at once, with and without
      pipelined writes (paramiko never reads the status of CLOSE, nor of pipelined
      WRITEs): a directory, symlinks leading out of the home, a missing parent, a parent
      that is a file. Then the size quota: a client that waits for each WRITE's status
      sees the refusal on the WRITE that crosses the limit.
  quota PORT USER PASSWORD LIMIT
      Unbuffered 1000-byte writes, each status read, until one is refused: prints
      "refused-after N" (the bytes accepted).
  symlinked PORT USER PASSWORD
      Uploads to names that are symlinks the administrator made (absolute and relative)
      replace the files they point to; the links stay.

Exits non-zero with the failing assertion on the first wrong answer; prints "ok" last.
"""

import errno
import json
import subprocess
import sys
import urllib.request

import paramiko


def connect(port, user, password):
    t = paramiko.Transport(("127.0.0.1", int(port)))
    t.start_client(timeout=30)
    t.auth_password(user, password)
    assert t.is_authenticated()
    return t, paramiko.SFTPClient.from_transport(t)


def expect_errno(code, what, f, *args):
    try:
        f(*args)
    except OSError as e:
        assert e.errno == code, f"{what}: errno {e.errno}, wanted {code}: {e}"
        return
    raise AssertionError(f"{what}: succeeded, wanted errno {code}")


def upload(sftp, path, data, pipelined):
    with sftp.open(path, "wb") as f:
        f.set_pipelined(pipelined)
        f.write(data)


def usage_step(sftp_name, api, user_id, cli, username):
    def get(url):
        with urllib.request.urlopen(api + url, timeout=10) as r:
            return json.load(r)

    one = get(f"/api/v1/user/{user_id}")
    listed = [u for u in get(f"/api/v1/user?username={username}") if u["username"] == username][0]
    out = subprocess.run(
        [cli, "api", "--url", api, "--json", "users", "get", str(user_id)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    by_cli = json.loads(out.stdout)
    reads = [one, listed, by_cli]
    print(sftp_name, " ".join(f"{u['used_quota_size']} {u['used_quota_files']}" for u in reads), flush=True)


def usage(port, user, password, api, user_id, cli):
    t, sftp = connect(port, user, password)
    step = lambda name: usage_step(name, api, user_id, cli, user)  # noqa: E731
    upload(sftp, "a.bin", b"a" * 1000, True)
    step("upload")
    upload(sftp, "a.bin", b"b" * 300, False)
    step("overwrite")
    with sftp.open("b.bin", "wb") as f:
        f.write(b"c" * 500)
    step("second")
    sftp.rename("b.bin", "c.bin")
    step("rename")
    sftp.posix_rename("a.bin", "c.bin")
    step("rename-over")
    sftp.remove("c.bin")
    step("remove")
    t.close()


def refusals(port, user, password):
    t, sftp = connect(port, user, password)
    sftp.mkdir("dir")
    with sftp.open("file", "wb") as f:
        f.write(b"x")
    for pipelined in (False, True):
        what = lambda p: f"{p} (pipelined={pipelined})"  # noqa: E731
        # A directory: paramiko reports the FAILURE status as a plain IOError (errno None
        # for SSH_FX_FAILURE), at open, not at close.
        try:
            upload(sftp, "dir", b"data", pipelined)
            raise AssertionError(what("dir") + ": upload over a directory succeeded")
        except OSError as e:
            assert "directory" in str(e).lower(), what("dir") + f": {e}"
        # Symlinks leading out of the home, as the final name and on the way.
        for p in ("out_abs", "out_rel", "out_dir/new", "out_abs_dir/new"):
            expect_errno(errno.EACCES, what(p), upload, sftp, p, b"data", pipelined)
        # A missing parent, a parent that is a file.
        for p in ("missing/new", "file/new"):
            expect_errno(errno.ENOENT, what(p), upload, sftp, p, b"data", pipelined)
    assert sftp.listdir("dir") == [], "nothing was written into the directory"
    t.close()


def quota_per_write(port, user, password, limit):
    """The user's size limit is LIMIT bytes: writes of 1000 bytes, each status read."""
    t, sftp = connect(port, user, password)
    f = sftp.open("big.bin", "wb", bufsize=0)
    f.set_pipelined(False)
    written = 0
    try:
        while True:
            f.write(b"q" * 1000)
            written += 1000
            assert written <= limit + 1000, f"{written} bytes accepted over a {limit} limit"
    except OSError as e:
        assert "quota" in str(e).lower(), f"refused for another reason: {e}"
    # The WRITE that crossed the limit is the one refused.
    assert written < limit < written + 1000 or written == limit, (written, limit)
    try:
        f.close()
    except OSError:
        pass
    print("refused-after", written, flush=True)
    t.close()


def symlinked(port, user, password):
    t, sftp = connect(port, user, password)
    for pipelined in (False, True):
        for name in ("abs_link", "rel_link", "docs/inner.txt"):
            data = f"new content via {name} {pipelined}".encode()
            upload(sftp, name, data, pipelined)
            with sftp.open(name, "rb") as f:
                assert f.read() == data, name
    # The links are still links.
    import stat as st

    for name in ("abs_link", "rel_link", "docs"):
        assert st.S_ISLNK(sftp.lstat(name).st_mode), name
    t.close()


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "usage":
        usage(*args)
    elif cmd == "refusals":
        refusals(*args)
    elif cmd == "quota":
        quota_per_write(args[0], args[1], args[2], int(args[3]))
    elif cmd == "symlinked":
        symlinked(*args)
    else:
        raise SystemExit(f"unknown command {cmd}")
    print("ok")


main()
