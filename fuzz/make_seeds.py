#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (small, named files).

The SFTP seeds come from a real OpenSSH session: the bytes its `sftp` client sent
(client-to-server) and got back (server-to-client), captured once with a tee around a
local sftp-server (`sftp -D`) and kept in fuzz/captures/:

    printf '#!/bin/sh\\ntee -a c2s.bin | /usr/lib/openssh/sftp-server -d home | tee -a s2c.bin\\n' > cap.sh
    chmod +x cap.sh && sftp -D ./cap.sh -b batch   # pwd, ls -l, mkdir, put (5000 bytes),
                                                   # chmod, rename, ln -s, ln, df, get, rm

The rest is hand-made from the formats each parser reads. Run from anywhere:
`python3 fuzz/make_seeds.py`; it rewrites only its own (named) seeds.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def packets(stream):
    """Splits a length-prefixed SFTP stream into packet bodies."""
    i, out = 0, []
    while i + 4 <= len(stream):
        (n,) = struct.unpack(">I", stream[i : i + 4])
        out.append(stream[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def frame(body):
    return struct.pack(">I", len(body)) + body


def shrink(body, keep=48):
    """A WRITE (6) or DATA (103) with its data cut to `keep` bytes, lengths patched."""
    ty = body[0]
    if ty == 6:
        (hlen,) = struct.unpack(">I", body[5:9])
        at = 9 + hlen + 8
        return body[: at] + struct.pack(">I", keep) + body[at + 4 : at + 4 + keep]
    if ty == 103:
        return body[:5] + struct.pack(">I", keep) + body[9 : 9 + keep]
    return body


def name_of(body):
    ty = body[0]
    names = {1: "init", 2: "version", 3: "open", 4: "close", 5: "read", 6: "write",
             7: "lstat", 8: "fstat", 9: "setstat", 10: "fsetstat", 11: "opendir",
             12: "readdir", 13: "remove", 14: "mkdir", 15: "rmdir", 16: "realpath",
             17: "stat", 18: "rename", 19: "readlink", 20: "symlink", 101: "status",
             102: "handle", 103: "data", 104: "name", 105: "attrs", 200: "extended",
             201: "extended-reply"}
    n = names.get(ty, f"type{ty}")
    if ty == 200 and len(body) >= 9:
        (l,) = struct.unpack(">I", body[5:9])
        n += "-" + body[9 : 9 + l].decode("ascii", "replace").split("@")[0]
    return n


def sftp_seeds():
    cap = os.path.join(HERE, "captures")
    c2s = open(os.path.join(cap, "openssh-c2s.bin"), "rb").read()
    s2c = open(os.path.join(cap, "openssh-s2c.bin"), "rb").read()

    # Framer: 4 control bytes (packet limit, chunking seed) + the client's whole stream,
    # its 5000-byte WRITE spanning chunks; and smaller slices at other limits.
    write("sftp_framer", "openssh-session", b"\x03\x11\x22\x33" + c2s)
    first = b"".join(frame(p) for p in packets(c2s)[:12])
    write("sftp_framer", "openssh-start-small-chunks", b"\x01\x05\x00\x00" + first)
    write("sftp_framer", "openssh-start-limit-4097", b"\x02\xfe\xff\x07" + first)
    write("sftp_framer", "zero-length", b"\x03\x00\x00\x01" + first[:30] + b"\0\0\0\0")
    write("sftp_framer", "too-long", b"\x00\x01\x02\x03" + b"\x7f\xff\xff\xff\x03")

    # Decoder: the first two request and reply bodies of each kind (file data cut short).
    count = {}
    for body in packets(c2s) + packets(s2c):
        body = shrink(body)
        n = name_of(body)
        count[n] = count.get(n, 0) + 1
        if count[n] <= 2:
            write("sftp_decode", f"openssh-{n}-{count[n]}", body)
    # ATTRS with extended pairs, and an unknown type carrying an id.
    write("sftp_decode", "setstat-extended-attrs",
          b"\x09\0\0\0\x07" + frame(b"/a")
          + struct.pack(">I", 0x8000000F) + struct.pack(">Q", 7) + struct.pack(">III", 1, 2, 0o644)
          + struct.pack(">II", 3, 4) + struct.pack(">I", 1) + frame(b"user.x") + frame(b"v"))
    write("sftp_decode", "unknown-type", b"\x63\0\0\0\x2a")
    write("sftp_decode", "ext-expand-path",
          b"\xc8\0\0\0\x09" + frame(b"expand-path@openssh.com") + frame(b"~/docs"))
    write("sftp_decode", "ext-fsync", b"\xc8\0\0\0\x0a" + frame(b"fsync@openssh.com") + frame(b"\0\0\0\1"))
    write("sftp_decode", "ext-fstatvfs", b"\xc8\0\0\0\x0b" + frame(b"fstatvfs@openssh.com") + frame(b"\0\0\0\1"))
    write("sftp_decode", "readlink", b"\x13\0\0\0\x0c" + frame(b"link.txt"))
    write("sftp_decode", "rmdir", b"\x0f\0\0\0\x0d" + frame(b"docs"))
    write("sftp_decode", "rename-v3", b"\x12\0\0\0\x0e" + frame(b"a") + frame(b"b"))
    write("sftp_decode", "fstat", b"\x08\0\0\0\x0f" + frame(b"\0\0\0\1"))
    write("sftp_decode", "limits-reply", b"\xc9\0\0\0\x01" + struct.pack(">QQQQ", 263168, 261120, 261120, 0))


def vpath_seeds():
    for i, p in enumerate([
        b"../../etc/passwd", b"/a//b/./c", b"\0", b"/a\0b", b"a/b/../../../c", b"/...",
        b"//x///y/", b"", b".", b"/.hidden/..x", b"caf\xe9/../\xff\xfe",
        b"/a/b\n../../../c", b"/a/b\n/z", b"/home/user\nc/./d/", b"/\n..",
        b"/" + b"a" * 255 + b"/b", b"a" * 256,
    ]):
        write("vpath", f"path-{i:02}", p)


def vfs_seeds():
    for i, p in enumerate([
        b"/", b"a/b/file", b"in/file", b"abs_in/b/file", b"abs_home/a/b", b"up/secret",
        b"abs_out/secret", b"abs_etc", b"slash/etc/passwd", b"dd", b"loop", b"chain/../file",
        b"a/b/back/c", b"empty.txt", b"a\n../../up/secret", b"in\n../abs_out/dir",
        b"../../../etc/passwd", b"a/b/c/../../../abs_home/in/file",
    ]):
        write("vfs_resolve", f"path-{i:02}", p)


def password_seeds():
    salt = "c2FsdHNhbHRzYWx0c2FsdA"
    key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    seeds = {
        # The formats password.rs verifies, from its tests; the pbkdf2 ones with the
        # password that matches.
        "argon2id-default": f"$argon2id$v=19$m=65536,t=3,p=2${salt}${key}\ncorrect horse",
        "argon2id-cheap": f"$argon2id$v=19$m=64,t=1,p=1${salt}$aGFzaGhhc2hoYXNoaGFzaA\npw",
        "argon2id-too-much-memory": f"$argon2id$v=19$m=1048576,t=3,p=2${salt}${key}",
        "argon2id-v16-keyid": f"$argon2id$v=16$m=32,t=1,p=1,keyid=AAAA${salt}${key}",
        "bcrypt-2a-cost4": "$2a$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234\nhunter2",
        "bcrypt-2b-cost12": "$2b$12$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
        "bcrypt-2y-cost31": "$2y$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
        "bcrypt-httpd-dummy": "$2b$10$C6UzMDM.H6dfI/f/IKxGhuHPAPzSBmc7nM7NXRBkDCKTy.fGdZK7C",
        "pbkdf2-sha256": "$pbkdf2-sha256$1000$salt-1234$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=\npassword",
        "pbkdf2-sha1": "$pbkdf2-sha1$2000$abcdef$R4rGVA8xo34+Jiw0ahQwKBwuCgs=\nsecret",
        "pbkdf2-sha512": "$pbkdf2-sha512$500$NaCl$8J2uFJ0LKVIRifL0SIO0sXyX0E8KZBLOIcP3NhYNo2gOeJkKdTF7Jrjv4nrhnoF260p28h+P/lk3es2NqM1vKw==\np4ss w0rd",
        "pbkdf2-unpadded": "$pbkdf2-sha256$1000$salt-1234$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU\npassword",
        "pbkdf2-too-many": "$pbkdf2-sha256$2000000000$salt$HiA8CWifTWeVBazZUM/y0qdXKlATpiZCrHVyRo/gYnU=",
        # What the fuzzer found (fixed in password.rs): a bcrypt cost check_cost read as 2
        # characters, a pbkdf2 key of several digest blocks.
        "regress-bcrypt-cost-024": "$2a$024$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
        "regress-pbkdf2-sha1-3-blocks": "$pbkdf2-sha1$2000000$abcdef$" + "A" * 80,
        "plaintext": "not a hash\nnot a hash",
        "md5": "$md5$abc\nabc",
    }
    for name, s in seeds.items():
        write("password_hash", name, s)


def htpasswd_seeds():
    write("htpasswd", "two-users",
          "admin:$2y$05$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234\n"
          "# a comment\n\n"
          "ops:$2b$10$C6UzMDM.H6dfI/f/IKxGhuHPAPzSBmc7nM7NXRBkDCKTy.fGdZK7C\n")
    write("htpasswd", "skipped-lines",
          "md5user:$apr1$abcdefgh$0123456789abcdefghijkl\n"
          "shauser:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n"
          ":$2a$04$nouser\n"
          "no-colon-line\n"
          "  spaced : $2a$04$x  \r\n"
          "dup:$2a$04$first\ndup:$2a$04$second\n")


def config_env_seeds():
    for name, text in {
        "bind-port": "SFTPGO_SFTPD__BIND_PORT=2022",
        "provider": "SFTPGO_DATA_PROVIDER__DRIVER=memory\nSFTPGO_DATA_PROVIDER__POOL_SIZE=10\nSFTPGO_DATA_PROVIDER__TRACK_QUOTA=2",
        "banner-umask": "SFTPGO_SFTPD__BANNER=SFTPGo 0.9\nSFTPGO_SFTPD__UMASK=0022\nSFTPGO_LOG__LEVEL=debug",
        "lists": "SFTPGO_SFTPD__ACTIONS__EXECUTE_ON=upload, download,\nSFTPGO_SFTPD__KEYS=id_rsa, id_ed25519",
        "httpd": "SFTPGO_HTTPD__BIND_PORT=8080\nSFTPGO_HTTPD__BIND_ADDRESS=127.0.0.1\nSFTPGO_HTTPD__CERTIFICATE_FILE=cert.pem",
        "bad-values": "SFTPGO_SFTPD__BIND_PORT=99999\nSFTPGO_SFTPD__IDLE_TIMEOUT=abc\nSFTPGO_SFTPD__MAX_AUTH_TRIES=-1",
        "not-keys": "SFTPGO_CONFIG_DIR=/etc/sftpgo\nSFTPGO_SFTPD=x\nSFTPGO_SFTPD__\nSFTPGO_NOPE__X=1\nPATH=/usr/bin",
        "actions": "SFTPGO_SFTPD__ACTIONS__HTTP_NOTIFICATION_URL=http://127.0.0.1:8000/\nSFTPGO_SFTPD__ACTIONS__COMMAND_TIMEOUT=0",
        "case-and-repeat": "sftpgo_sftpd__bind_port=1\nSFTPGO_sftpd__BANNER=a\nSFTPGO_SFTPD__BANNER=b",
    }.items():
        write("config_env", name, text)


if __name__ == "__main__":
    sftp_seeds()
    vpath_seeds()
    vfs_seeds()
    password_seeds()
    htpasswd_seeds()
    config_env_seeds()
