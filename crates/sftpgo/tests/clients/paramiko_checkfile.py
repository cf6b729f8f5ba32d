"""paramiko's SFTPFile.check (the check-file extension, by handle) against hashlib.

usage: paramiko_checkfile.py PORT USER PASSWORD REMOTE_PATH LOCAL_COPY

Prints a JSON list: one {"case", "got", "want"} per hash asked for (hex), and
{"case": "refused ...", "error": ...} for the requests the server must refuse.
"""
import hashlib
import json
import sys

import paramiko


def main():
    port, user, password, remote, local = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    data = open(local, "rb").read()
    t = paramiko.Transport(("127.0.0.1", port))
    t.connect(username=user, password=password)
    sftp = paramiko.SFTPClient.from_transport(t)
    out = []
    with sftp.open(remote, "r") as f:
        for alg in ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]:
            for offset, length, block in [(0, 0, 0), (1000, 70000, 0), (0, 0, 65536), (5, 300000, 256)]:
                got = f.check(alg, offset, length, block)
                end = len(data) if length == 0 else min(len(data), offset + length)
                chunk = data[offset:end]
                if block == 0:
                    want = hashlib.new(alg, chunk).digest()
                else:
                    want = b"".join(hashlib.new(alg, chunk[i:i + block]).digest() for i in range(0, len(chunk), block))
                out.append({"case": "%s %d %d %d" % (alg, offset, length, block), "got": got.hex(), "want": want.hex()})
        # The client's preference order: the first one the server has.
        got = f.check("whirlpool,sha256,md5", 0, 0, 0)
        out.append({"case": "first supported", "got": got.hex(), "want": hashlib.sha256(data).digest().hex()})
        for alg, block in [("whirlpool", 0), ("sha256", 100)]:
            try:
                f.check(alg, 0, 0, block)
                out.append({"case": "refused %s %d" % (alg, block), "error": None})
            except IOError as e:
                out.append({"case": "refused %s %d" % (alg, block), "error": str(e)})
    t.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
