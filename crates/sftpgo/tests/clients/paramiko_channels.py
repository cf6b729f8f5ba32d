"""One paramiko SSH connection running an SFTP channel and an SCP channel side by side,
with the server's connection list (REST API) read while the SCP upload is half-way.

usage: paramiko_channels.py PORT USER PASSWORD API_URL

Prints JSON: {"listed": <GET /api/v1/connection during the upload>, "exit": <scp exit
status>, "size": <size of the uploaded file seen over SFTP>, "sftp_listing": [...]}.
"""
import json
import sys
import time
import urllib.request

import paramiko


def main():
    port, user, password, api = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    t = paramiko.Transport(("127.0.0.1", port))
    t.connect(username=user, password=password)
    sftp = paramiko.SFTPClient.from_transport(t)
    sftp.mkdir("/dir")
    scp = t.open_session()
    scp.exec_command("scp -t /dir")
    assert scp.recv(1) == b"\0"
    scp.sendall(b"C0644 8 viascp\n")
    assert scp.recv(1) == b"\0"
    scp.sendall(b"abcd")
    listed = []
    for _ in range(200):
        listed = json.load(urllib.request.urlopen(api + "/api/v1/connection"))
        if any(c["active_transfers"] for c in listed):
            break
        time.sleep(0.05)
    # The SFTP channel keeps working while the SCP upload waits.
    listing = sorted(sftp.listdir("/"))
    scp.sendall(b"efgh\0")
    assert scp.recv(1) == b"\0"
    scp.shutdown_write()
    status = scp.recv_exit_status()
    size = sftp.stat("/dir/viascp").st_size
    t.close()
    print(json.dumps({"listed": listed, "exit": status, "size": size, "sftp_listing": listing}))


if __name__ == "__main__":
    main()
