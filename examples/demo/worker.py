"""Fetches the page every POLL_EVERY seconds and says what it got."""
import os
import time
import urllib.request

instance = os.environ.get("FORKYARD_INSTANCE", "?")
every = float(os.environ.get("POLL_EVERY", "2"))
while True:
    with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=5) as reply:
        print(f"worker {instance} fetched {len(reply.read())} bytes (HTTP {reply.status})", flush=True)
    time.sleep(every)
