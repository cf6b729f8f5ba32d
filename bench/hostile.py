#!/usr/bin/env python3
"""The attacks of bench/hostile.sh against a running server (see there).

Usage: hostile.py PID PORT WORK USER PASSWORD LEGIT_KEY
  PID        the server's process (its RSS and fds are sampled from /proc)
  PORT       its SFTP port on 127.0.0.1
  WORK       a directory with big.bin (30 MB) and legit.bin (1 MiB) in USER's home
  USER, PASSWORD  the account the authenticated attacks use (a cheap stored hash, so that
             their figures are the attack's, not one login's argon2id); the password
             attacks go to the user "victim" (argon2id, the default)
  LEGIT_KEY  private key of the user "legit", whose login and 1 MiB download from another
             address (127.0.0.2) is tried during each attack

Attackers connect from 127.0.1.1-250 (a botnet's many addresses, so the per-host limit
does not shield the server) except where the attack is "from one IP". Every attack stops
by itself within a few seconds; the whole run within a few minutes.
"""

import os
import socket
import subprocess
import sys
import threading
import time

import logging

import paramiko

sys.path.insert(
    0,
    os.path.join(os.path.dirname(__file__), "..", "crates", "sftpgo", "tests", "clients"),
)
import paramiko_abandon as abandon  # noqa: E402  (cancelled prefetch, unread STAT flood)

PID, PORT, WORK, USER, PASSWORD, LEGIT_KEY = sys.argv[1:7]
# Refused channels and connections are what the attacks expect: not worth a traceback.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)
threading.excepthook = lambda args: None
PORT = int(PORT)
MIB = 1024 * 1024


def rss():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fds():
    return len(os.listdir(f"/proc/{PID}/fd"))


class Peak(threading.Thread):
    """The server's highest RSS while running."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = rss()
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(0.02)


def source(i):
    return f"127.0.1.{i % 250 + 1}"


def connect_from(addr, timeout=30):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout, source_address=(addr, 0))
    return s


def transport_from(addr):
    t = paramiko.Transport(connect_from(addr))
    t.start_client(timeout=30)
    return t


def legit():
    """A key login from 127.0.0.2 and a 1 MiB download: (succeeded, seconds)."""
    out = os.path.join(WORK, "legit.out")
    if os.path.exists(out):
        os.remove(out)
    started = time.time()
    try:
        r = subprocess.run(
            ["sftp", "-q", "-i", LEGIT_KEY, "-P", str(PORT), "-o", "BindAddress=127.0.0.2",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "BatchMode=yes", "-o", "ConnectTimeout=30", "-b", "-", "legit@127.0.0.1"],
            input=f"get /legit.bin {out}\n".encode(), capture_output=True, timeout=60,
        )
        ok = r.returncode == 0 and os.path.getsize(out) == MIB
    except (subprocess.TimeoutExpired, OSError):
        ok = False
    return ok, time.time() - started


# Each attack: start(), the legit client runs, stop(); returns a note for the table.

def idle_connections(n=1000, greeting=b""):
    """n connections that send `greeting` (nothing: silent) and then nothing more."""
    socks = []
    def start():
        for i in range(n):
            try:
                s = connect_from(source(i))
                if greeting:
                    s.sendall(greeting)
                socks.append(s)
            except OSError:
                pass
    def stop():
        time.sleep(2)
        for s in socks:
            s.close()
        return f"{len(socks)} connected"
    return start, stop


def password_attempts(n, from_one_ip, rounds=1):
    results = {"failed": 0, "refused or error": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(n)
    def attempt(i):
        for _ in range(rounds):
            try:
                # One IP of its own: the defender bans it, and no other row uses it.
                t = transport_from("127.0.3.1" if from_one_ip else source(i))
                if rounds == 1:
                    barrier.wait(timeout=30)
                try:
                    t.auth_password("victim", "wrong-password")
                    key = "accepted?!"
                except paramiko.AuthenticationException:
                    key = "failed"
                t.close()
            except Exception:
                key = "refused or error"
            with lock:
                results[key] = results.get(key, 0) + 1
    threads = [threading.Thread(target=attempt, args=(i,), daemon=True) for i in range(n)]
    def start():
        for th in threads:
            th.start()
    def stop():
        for th in threads:
            th.join(timeout=60)
        return ", ".join(f"{v} {k}" for k, v in results.items() if v)
    return start, stop


def in_thread(f, *args):
    th = threading.Thread(target=f, args=args, daemon=True)
    def start():
        th.start()
        time.sleep(0.5)
    def stop():
        th.join(timeout=120)
        return ""
    return start, stop


def channels_and_handles(channels=20, handles=1024):
    state = {"channels": 0, "handles": 0, "refused": 0}
    holder = {}
    def start():
        t = transport_from(source(0))
        t.auth_password(USER, PASSWORD)
        holder["t"] = t
        for _ in range(channels):
            try:
                c = paramiko.SFTPClient.from_transport(t)
            except Exception:
                continue
            state["channels"] += 1
            for _ in range(handles):
                try:
                    holder.setdefault("files", []).append(c.open("/legit.bin", "rb"))
                    state["handles"] += 1
                except IOError:
                    state["refused"] += 1
                    break
    def stop():
        time.sleep(1)
        holder["t"].close()
        return f"{state['channels']} channels, {state['handles']} handles open"
    return start, stop


def log_flood(seconds=10):
    log = os.path.join(WORK, "ours", "sftpgo.log")
    state = {}
    def flood():
        t = transport_from(source(0))
        t.auth_password(USER, PASSWORD)
        c = paramiko.SFTPClient.from_transport(t)
        stop = time.time() + seconds
        n = 0
        while time.time() < stop:
            c.open("/empty", "wb").close()
            n += 1
        state["n"] = n
        t.close()
    th = threading.Thread(target=flood, daemon=True)
    def start():
        state["size"] = os.path.getsize(log)
        th.start()
    def stop():
        th.join(timeout=seconds + 30)
        time.sleep(1)
        grown = os.path.getsize(log) - state["size"]
        return f"{state.get('n', 0)} OPEN/CLOSE, log +{grown / 1024:.0f} KiB"
    return start, stop


ATTACKS = [
    ("1,000 silent connections", lambda: idle_connections()),
    ("1,000 stalled after the version line",
     lambda: idle_connections(greeting=b"SSH-2.0-stalled\r\n")),
    ("128 simultaneous password attempts", lambda: password_attempts(128, False)),
    ("300 wrong passwords from one IP (banned by the defender after 15)",
     lambda: password_attempts(20, True, rounds=15)),
    ("20 cancelled prefetch downloads",
     lambda: in_thread(abandon.prefetch, PORT, USER, PASSWORD, "/big.bin", 20)),
    ("unread STAT flood on 8 channels",
     lambda: in_thread(abandon.statflood, PORT, USER, PASSWORD, 8, 5)),
    ("20 channels x 1,024 handles", lambda: channels_and_handles()),
    ("OPEN/CLOSE log flood (10 s)", lambda: log_flood()),
]


def settle(base_fds, timeout=40):
    """Waits for the server to let go of what the attack made it hold."""
    deadline = time.time() + timeout
    while time.time() < deadline and fds() > base_fds:
        time.sleep(0.2)
    # The server gives freed memory back within 2 s of a burst's last connection.
    time.sleep(3)


def main():
    ok, secs = legit()
    assert ok, "the legitimate client works before any attack"
    time.sleep(1)
    print("| attack | peak RSS above idle | fds before → after | RSS before → after | "
          "legit login + 1 MiB during | note |")
    print("|---|---|---|---|---|---|")
    for name, make in ATTACKS:
        base_rss, base_fds = rss(), fds()
        start, stop = make()
        peak = Peak()
        peak.start()
        start()
        result = {}
        probe = threading.Thread(target=lambda: result.update(zip(("ok", "secs"), legit())))
        probe.start()
        note = stop()
        probe.join(timeout=90)
        settle(base_fds)
        peak.stop.set()
        peak.join()
        after_rss, after_fds = rss(), fds()
        legit_text = (f"ok in {result['secs']:.1f} s" if result.get("ok")
                      else f"FAILED ({result.get('secs', 0):.1f} s)")
        print(f"| {name} | {(peak.peak - base_rss) / MIB:.1f} MiB | {base_fds} → {after_fds} | "
              f"{base_rss / MIB:.1f} → {after_rss / MIB:.1f} MiB | {legit_text} | {note} |",
              flush=True)


if __name__ == "__main__":
    main()
