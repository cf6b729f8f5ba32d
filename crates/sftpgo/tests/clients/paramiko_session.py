"""One paramiko session against the server under test, driven by tests/clients.rs.

Usage: paramiko_session.py PORT USER KEY PASSWORD WORKDIR
WORKDIR holds the inputs the Rust test wrote (big.bin, small.bin); the downloads land
there too, and the test compares bytes. Every other check is an assert here: the script
exits non-zero, with the failing line, on the first answer that is not what an SFTP
server must give. Runs the parts of paramiko's SFTPClient that real scripts use:
pipelined put with confirm (a STAT after), prefetching get (many READs in flight),
listdir_attr, stat/lstat, chmod, utime, rename, posix_rename, symlink, readlink,
normalize, truncate, append and random-access writes, remove, rmdir, and the
errors paramiko maps to Python exceptions.
"""

import errno
import os
import stat
import sys

import paramiko

port, user, key_path, password, work = sys.argv[1:6]
port = int(port)


def connect(auth):
    t = paramiko.Transport(("127.0.0.1", port))
    t.start_client(timeout=30)
    auth(t)
    assert t.is_authenticated()
    return t, paramiko.SFTPClient.from_transport(t)


def expect_errno(code, f, *args):
    try:
        f(*args)
    except OSError as e:
        assert e.errno == code, f"{f.__name__}{args}: errno {e.errno}, wanted {code}: {e}"
        return
    raise AssertionError(f"{f.__name__}{args} succeeded, wanted errno {code}")


# Public key (Ed25519, OpenSSH format).
key = paramiko.Ed25519Key.from_private_key_file(key_path)
t, sftp = connect(lambda t: t.auth_publickey(user, key))

home = sftp.normalize(".")
assert home == "/", home

# Large files: pipelined upload (confirm=True stats the result), prefetching download.
big = os.path.join(work, "big.bin")
attrs = sftp.put(big, "big.bin", confirm=True)
assert attrs.st_size == os.path.getsize(big), attrs
sftp.get("big.bin", os.path.join(work, "big.back"), prefetch=True, max_concurrent_prefetch_requests=64)

# A directory tree, listed with attributes.
sftp.mkdir("d", mode=0o750)
assert stat.S_ISDIR(sftp.stat("d").st_mode)
for i in range(20):
    sftp.put(os.path.join(work, "small.bin"), f"d/f{i:02}")
names = sorted(a.filename for a in sftp.listdir_attr("d"))
assert names == [f"f{i:02}" for i in range(20)], names
sizes = {a.st_size for a in sftp.listdir_attr("d")}
assert sizes == {os.path.getsize(os.path.join(work, "small.bin"))}, sizes

# Attributes: mode and times.
sftp.chmod("d/f00", 0o600)
assert stat.S_IMODE(sftp.stat("d/f00").st_mode) == 0o600
sftp.utime("d/f00", (1_000_000_000, 1_200_000_000))
st = sftp.stat("d/f00")
assert (st.st_atime, st.st_mtime) == (1_000_000_000, 1_200_000_000), (st.st_atime, st.st_mtime)

# Renames: plain (refuses an existing target, SFTP v3) and POSIX (replaces it).
sftp.rename("d/f01", "d/renamed")
expect_errno(errno.ENOENT, sftp.stat, "d/f01")
try:
    sftp.rename("d/f02", "d/f03")
    raise AssertionError("rename onto an existing file succeeded")
except OSError:
    pass
sftp.posix_rename("d/f02", "d/f03")
expect_errno(errno.ENOENT, sftp.stat, "d/f02")

# Links inside the home dir.
sftp.symlink("f03", "d/link")
assert stat.S_ISLNK(sftp.lstat("d/link").st_mode)
# A relative target names a file beside the link; READLINK answers the path in the
# user's tree.
assert sftp.readlink("d/link") == "/d/f03", sftp.readlink("d/link")
assert sftp.stat("d/link").st_size == sftp.stat("d/f03").st_size

# Random access, append, truncate, all on the same file.
with sftp.open("edit.bin", "wb") as f:
    f.write(b"0123456789")
    f.seek(2)
    f.write(b"ab")
with sftp.open("edit.bin", "ab") as f:
    f.write(b"XYZ")
with sftp.open("edit.bin", "rb") as f:
    assert f.read() == b"01ab456789XYZ"
    f.seek(4)
    assert f.read(3) == b"456"
sftp.truncate("edit.bin", 4)
with sftp.open("edit.bin", "rb") as f:
    assert f.read() == b"01ab"
with sftp.open("edit.bin", "r+b") as f:
    f.seek(1)
    f.write(b"Q")
with sftp.open("edit.bin", "rb") as f:
    assert f.read() == b"0Qab"

# Errors paramiko turns into exceptions.
expect_errno(errno.ENOENT, sftp.open, "missing.bin", "rb")
expect_errno(errno.ENOENT, sftp.remove, "missing.bin")
try:
    sftp.rmdir("d")
    raise AssertionError("rmdir of a non-empty directory succeeded")
except OSError:
    pass
# Nothing outside the home dir: ".." stops at the root.
assert sftp.normalize("../../..") == "/"
assert "big.bin" in sftp.listdir("../..")

# Clean up a directory.
for name in sftp.listdir("d"):
    sftp.remove(f"d/{name}")
sftp.rmdir("d")
expect_errno(errno.ENOENT, sftp.stat, "d")
sftp.close()
t.close()

# Password authentication, a second session.
t, sftp = connect(lambda t: t.auth_password(user, password))
assert sftp.stat("big.bin").st_size == os.path.getsize(big)
sftp.close()
t.close()

# A wrong password is refused.
t = paramiko.Transport(("127.0.0.1", port))
t.start_client(timeout=30)
try:
    t.auth_password(user, password + "-wrong")
    raise AssertionError("a wrong password was accepted")
except paramiko.AuthenticationException:
    pass
t.close()
print("paramiko: ok")
