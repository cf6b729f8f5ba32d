"""A password brute force with paramiko, one password per connection (what most
brute-force tools do), or one login with a given password.

usage: paramiko_bruteforce.py HOST PORT USER brute N
       paramiko_bruteforce.py HOST PORT USER login PASSWORD

Prints a JSON list with one result per attempt: "failed" (the server answered no),
"accepted", "refused" (no SSH handshake: the connection was closed first) or
"error:<type>".
"""
import json
import sys

import paramiko


def attempt(host, port, user, password):
    t = paramiko.Transport((host, port))
    t.banner_timeout = 10
    try:
        try:
            t.start_client(timeout=10)
        except (paramiko.SSHException, EOFError, OSError):
            return "refused"
        try:
            t.auth_password(user, password)
            return "accepted"
        except paramiko.AuthenticationException:
            return "failed"
        except Exception as e:  # noqa: BLE001 - reported to the test
            return "error:" + type(e).__name__
    finally:
        t.close()


def main():
    host, port, user, mode, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    if mode == "brute":
        results = [attempt(host, port, user, "wrong-%d" % i) for i in range(int(arg))]
    else:
        results = [attempt(host, port, user, arg)]
    print(json.dumps(results))


main()
