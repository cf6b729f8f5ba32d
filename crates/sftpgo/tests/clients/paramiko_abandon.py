"""Clients that leave the server waiting on them, driven by tests/hostile.rs and
bench/hostile.sh. Each stops reading the server's replies, keeps requests outstanding,
then closes its connection; the server must end the sessions and free what they held.

Usage:
  paramiko_abandon.py prefetch PORT USER PASSWORD PATH N
      N connections each open PATH, start paramiko's prefetch (every READ of the file
      sent at once), read 64 KiB of it, and all close their transports.
  statflood PORT USER PASSWORD CHANNELS SECONDS
      One connection with CHANNELS SFTP channels, each sending pipelined STATs without
      reading a reply, for SECONDS (or until the server stops taking them), then closes.
      Each channel first opens /held.bin and keeps it open.

Prints "ok" last.
"""

import os
import sys
import threading
import time

import struct

import paramiko

CMD_STAT_BYTE = 17

# A small window: a client that does not read stops the server's replies sooner.
WINDOW = 64 * 1024


def connect(port, user, password):
    t = paramiko.Transport(("127.0.0.1", int(port)), default_window_size=WINDOW)
    t.start_client(timeout=30)
    t.auth_password(user, password)
    assert t.is_authenticated()
    return t


def prefetch(port, user, password, path, n):
    transports = []
    for _ in range(int(n)):
        t = connect(port, user, password)
        sftp = paramiko.SFTPClient.from_transport(t)
        f = sftp.open(path, "rb")
        f.prefetch()
        assert len(f.read(64 * 1024)) == 64 * 1024
        transports.append(t)
    # Let the server fill the windows and stall on every connection.
    time.sleep(1)
    for t in transports:
        t.close()


def statflood(port, user, password, channels, seconds):
    t = connect(port, user, password)
    clients = [paramiko.SFTPClient.from_transport(t) for _ in range(int(channels))]
    # Each session also holds an open file, which it must close when it ends.
    held = [c.open("/held.bin", "rb") for c in clients]
    stop = time.time() + float(seconds)
    sent = [0] * len(clients)

    # STAT "/" packets, sent 1 MiB at a time (a Python loop of single requests is too
    # slow to fill what the server holds): the server sees many small requests.
    stat = struct.pack(">IBIIs", 10, CMD_STAT_BYTE, 1, 1, b"/")
    batch = stat * (1024 * 1024 // len(stat))

    def flood(i, sftp):
        try:
            while time.time() < stop:
                # The replies are never read.
                sftp.sock.sendall(batch)
                sent[i] += len(batch) // len(stat)
        except Exception:
            pass  # the transport was closed under a blocked send

    threads = [
        threading.Thread(target=flood, args=(i, c), daemon=True)
        for i, c in enumerate(clients)
    ]
    for th in threads:
        th.start()
    time.sleep(float(seconds))
    print("sent", sum(sent), "STATs", file=sys.stderr, flush=True)
    t.close()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    {"prefetch": prefetch, "statflood": statflood}[mode](*args)
    print("ok", flush=True)
    # Threads blocked in a send on the closed transport are not waited for.
    os._exit(0)


if __name__ == "__main__":
    main()
