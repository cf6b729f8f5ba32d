#!/usr/bin/env python3
"""asyncssh helper for bench/run.sh.

  sessions.py hold PORT USER KEY N STOPFILE
      Open N authenticated SFTP sessions (one SSH connection each, SFTP subsystem started
      and one stat('.') round trip done), print "ready <ok> <failed>", then keep them open
      until STOPFILE exists; close them and exit.
  sessions.py ttfb PORT USER KEY N PATH
      N times: fresh connection + public-key auth + SFTP init + open(PATH) + read(1);
      print the median, min and max milliseconds from connect() to the byte being returned.
"""
import asyncio
import os
import statistics
import sys
import time

import asyncssh

CONCURRENT_HANDSHAKES = 50


def opts(user, key):
    return dict(username=user, client_keys=[key], known_hosts=None, agent_path=None,
                encryption_algs=["aes128-gcm@openssh.com"], config=[])


async def hold(port, user, key, n, stopfile):
    sem = asyncio.Semaphore(CONCURRENT_HANDSHAKES)
    held, failed = [], []

    async def one():
        async with sem:
            try:
                conn = await asyncssh.connect("127.0.0.1", port, **opts(user, key))
                sftp = await conn.start_sftp_client()
                await sftp.stat(".")
                held.append((conn, sftp))
            except Exception as e:  # noqa: BLE001 - report, keep going
                failed.append(repr(e))

    await asyncio.gather(*(one() for _ in range(n)))
    print(f"ready {len(held)} {len(failed)}", flush=True)
    if failed:
        print("first failure:", failed[0], file=sys.stderr, flush=True)
    while not os.path.exists(stopfile):
        await asyncio.sleep(0.2)
    for conn, _ in held:
        conn.close()
    await asyncio.gather(*(c.wait_closed() for c, _ in held), return_exceptions=True)


async def ttfb(port, user, key, n, path):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with asyncssh.connect("127.0.0.1", port, **opts(user, key)) as conn:
            async with conn.start_sftp_client() as sftp:
                async with sftp.open(path, "rb") as f:
                    data = await f.read(1)
                    t1 = time.perf_counter()
        assert len(data) == 1, data
        times.append((t1 - t0) * 1000)
    print(f"{statistics.median(times):.2f} {min(times):.2f} {max(times):.2f}")


def main():
    mode, port, user, key, n, extra = sys.argv[1:7]
    fn = hold if mode == "hold" else ttfb
    asyncio.run(fn(int(port), user, key, int(n), extra))


if __name__ == "__main__":
    main()
