"""Run ``wrk`` (Debian's package, installed on demand) with bench/wrk.lua and read its JSON line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk.lua")


def ensure_wrk() -> str:
    """The path of wrk; installs the Debian package when it is missing and we may (root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("wrk is missing: install it (Debian/Ubuntu: apt-get install wrk)")
    print("installing wrk (apt-get install wrk) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=True, capture_output=True)
    return shutil.which("wrk")


def run(url: str, *, connections: int, seconds: float, method: str = "GET", path: str = "/", token: str | None = None,
        body: str | None = None, ids_in: Path | None = None, ids_out: Path | None = None, threads: int = 2) -> dict:
    """One load run: ``connections`` keep-alive connections for ``seconds``; returns rates, statuses, latency (ms)."""
    threads = max(1, min(threads, connections))
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_THREADS": str(threads)}
    for key, value in (("BENCH_TOKEN", token), ("BENCH_BODY", body), ("BENCH_IDS_IN", ids_in), ("BENCH_IDS_OUT", ids_out)):
        if value is not None:
            env[key] = str(value)
    command = [ensure_wrk(), "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", "10s", "-s", str(SCRIPT), url + path]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    raw = json.loads(line[len("BENCH_JSON "):])
    seconds_run = raw["duration_us"] / 1e6
    return {
        "connections": connections, "seconds": round(seconds_run, 2), "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds_run, 1) if seconds_run else 0.0,
        "statuses": dict(sorted(raw["statuses"].items())), "errors": {k: v for k, v in raw["errors"].items() if v},
        "p50_ms": raw["latency_us"]["p50"] / 1000, "p99_ms": raw["latency_us"]["p99"] / 1000,
        "max_ms": raw["latency_us"]["max"] / 1000, "ids_reused": raw["ids_reused"],
    }
