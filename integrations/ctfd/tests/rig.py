"""The rig of the Chromium panel test (panel.chromium.ts): the CTFd stand-in with the plugin and
a real Poseidon (tests/harness.py), seeded with teams and ``poseidon`` challenges. Prints one
JSON line with what the browser test needs (with ``CTFD_RIG_GATEWAY=<container>``, Poseidon joins
that container, the stand-in Traefik's probe, to instance networks), then serves until its stdin closes (the test ends or
dies), and then removes everything it started (Poseidon's containers and networks by label).

    /usr/bin/python3 -m tests.rig        (from integrations/ctfd)
"""
import json
import os
import sys

from . import harness


def main():
    gateway = os.environ.get("CTFD_RIG_GATEWAY")
    standin, poseidon = harness.shared({"POSEIDON_GATEWAY_CONTAINER": gateway} if gateway else None)
    challenges = {
        "fast": standin.add_challenge("Fast web", "fast-web"),
        "tcp": standin.add_challenge("Echo", "tcp-echo"),
        "windowed": standin.add_challenge("Windowed", "window-web"),
    }
    for pid in ("fast-web", "tcp-echo", "window-web"):
        poseidon.wait_ready(pid)
    print(json.dumps({
        "standin": standin.url, "poseidon": poseidon.url, "key": poseidon.key, "manager": poseidon.manager,
        "users": standin.users, "teams": standin.teams, "challenges": challenges,
    }), flush=True)
    # Serve until the test closes our stdin (or dies, which closes it too).
    while sys.stdin.read(4096):
        pass


if __name__ == "__main__":
    main()
