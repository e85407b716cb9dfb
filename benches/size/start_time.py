#!/usr/bin/env python3
"""Envoy start time with and without the tollgate module: seconds from spawning Envoy until its
admin `/ready` answers 200, for a config whose HTTP filter chain loads the module (V8, the
repository's basic config with an empty plugin configuration) and for the same config without it
(plain Envoy). Rounds alternate between the two; prints each arm's median and the difference.

Usage: start_time.py MODULE.wasm [ROUNDS] [CONCURRENCY]   (run from the repository root)
Needs Envoy from `make setup` (.venv). Everything listens on 127.0.0.1 only."""
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def envoy_binary():
    found = glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))
    if not found:
        sys.exit("no Envoy in .venv: run `make setup`")
    return found[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(template, wasm):
    text = open(os.path.join(ROOT, template)).read()
    ports = {"ADMIN_PORT": free_port(), "LISTENER_PORT": free_port(), "UPSTREAM_PORT": free_port()}
    values = dict(ports, WASM=wasm, ACCESS_LOG="/dev/null", PLUGIN_CONFIG=json.dumps("{}"))
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    return text, ports["ADMIN_PORT"]


def time_to_ready(template, wasm, concurrency):
    yaml, admin = render(template, wasm)
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "envoy.yaml")
        open(config, "w").write(yaml)
        log = open(os.path.join(d, "envoy.log"), "w")
        start = time.monotonic()
        proc = subprocess.Popen(
            [envoy_binary(), "-c", config, "--disable-hot-restart", "--concurrency", str(concurrency),
             "--log-level", "warn"], stdout=subprocess.DEVNULL, stderr=log)
        try:
            while time.monotonic() - start < 60:
                if proc.poll() is not None:
                    sys.exit(f"Envoy exited early: {open(os.path.join(d, 'envoy.log')).read()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                        if r.status == 200:
                            return time.monotonic() - start
                except OSError:
                    pass
                time.sleep(0.01)
            sys.exit("Envoy not ready within 60 s")
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def main():
    wasm = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    plain, module = [], []
    for _ in range(rounds):
        plain.append(time_to_ready("benches/plain.yaml", wasm, concurrency))
        module.append(time_to_ready("envoy/e2e/configs/basic.yaml", wasm, concurrency))
    p, m = statistics.median(plain), statistics.median(module)
    print(f"module {os.path.getsize(wasm)} bytes, {rounds} rounds, concurrency {concurrency}")
    print(f"plain Envoy  median {p:.2f} s  ({', '.join(f'{x:.2f}' for x in plain)})")
    print(f"with module  median {m:.2f} s  ({', '.join(f'{x:.2f}' for x in module)})")
    print(f"added by the module: {m - p:+.2f} s")


if __name__ == "__main__":
    main()
