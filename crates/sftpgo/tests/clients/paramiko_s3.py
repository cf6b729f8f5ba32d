"""paramiko against a user whose files are in an S3 bucket: pipelined upload in several
multipart parts, prefetched and random-offset downloads, attributes accepted and ignored,
links and size changes refused as unsupported, then an upload cut off mid-way (the
connection dropped without CLOSE).

usage: paramiko_s3.py PORT USER PASSWORD [cut]   (cut: only the upload cut off)
"""
import hashlib
import os
import sys

import paramiko

port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
only_cut = sys.argv[4:] == ["cut"]


def connect():
    t = paramiko.Transport(("127.0.0.1", port))
    t.connect(username=user, password=password)
    return t, paramiko.SFTPClient.from_transport(t)


def everything():
    t, sftp = connect()
    data = os.urandom(11 * 1024 * 1024 + 12345)
    sftp.mkdir("pm")
    with sftp.open("pm/big.bin", "wb") as f:
        f.set_pipelined(True)
        for i in range(0, len(data), 32768):
            f.write(data[i:i + 32768])
    assert sftp.stat("pm/big.bin").st_size == len(data)
    with sftp.open("pm/big.bin", "rb") as f:
        f.prefetch()
        back = f.read()
    assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest(), "prefetched download differs"
    with sftp.open("pm/big.bin", "rb") as f:
        for off in (0, 5 * 1024 * 1024 - 7, 123, len(data) - 100, 7 * 1024 * 1024):
            f.seek(off)
            assert f.read(1000) == data[off:off + 1000], off
    assert "big.bin" in sftp.listdir("pm")
    # Times and modes: accepted, ignored (setstat_mode).
    sftp.chmod("pm/big.bin", 0o600)
    sftp.utime("pm/big.bin", (1_000_000_000, 1_000_000_000))
    # What a bucket cannot do: refused with "unsupported", the file unchanged.
    for what, call in (
        ("symlink", lambda: sftp.symlink("pm/big.bin", "pm/link")),
        ("truncate", lambda: sftp.truncate("pm/big.bin", 10)),
    ):
        try:
            call()
        except IOError as e:
            assert "nsupported" in str(e) or "8" in str(e.args), (what, e)
        else:
            raise AssertionError(what + " accepted")
    assert sftp.stat("pm/big.bin").st_size == len(data)
    sftp.close()
    t.close()

if not only_cut:
    everything()

# An upload cut off: 7 MiB sent (a part already in the bucket), then the connection
# drops without CLOSE. Nothing of it may appear.
t, sftp = connect()
try:
    sftp.mkdir("pm")
except IOError:
    pass
f = sftp.open("pm/cut.bin", "wb")
f.set_pipelined(True)
chunk = os.urandom(32768)
for _ in range(7 * 32):
    f.write(chunk)
f.flush()
sftp.stat("pm")  # the writes before it have been answered
t.sock.close()
print("ok")
