"""Peak RSS and CPU time of every component, sampled from /proc while the benchmark runs."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def label(pid: int) -> str | None:
    """The component a process belongs to, from its command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if match := re.search(r"ticketing\.cli run (\w+)", cmdline) or re.search(r"ticketing run (\w+)", cmdline):
        return match.group(1)
    if match := re.search(r"bench\.floor (\w+)", cmdline):
        return f"floor-{match.group(1)}"
    if "ticketing.cli up" in cmdline:
        return "supervisor"
    return None


def _usage(pid: int) -> tuple[int, float] | None:
    """(RSS bytes, CPU seconds) of one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None
    return rss, (int(stat[11]) + int(stat[12])) / TICK  # utime, stime


class Sampler:
    """Samples every process under ``roots`` every ``interval`` seconds, grouped by component."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.roots: set[int] = set()
        self.peak_rss: dict[int, int] = {}           # pid -> peak RSS
        self.cpu: dict[int, tuple[float, float]] = {}  # pid -> (first seen, last seen) CPU seconds
        self.component: dict[int, str] = {}
        self.marks: list[tuple[str, dict[str, float]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, pid: int) -> None:
        self.roots.add(pid)

    def start(self) -> "Sampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.sample()
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def pids(self, component: str) -> list[int]:
        """Processes of a component alive now."""
        self.sample()
        with self._lock:
            return sorted(pid for pid, name in self.component.items() if name == component and Path(f"/proc/{pid}").exists())

    def sample(self) -> None:
        children = _children()
        seen, todo = set(), list(self.roots)
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            todo.extend(children.get(pid, []))
        with self._lock:
            for pid in seen:
                name = self.component.get(pid) or label(pid)
                usage = _usage(pid)
                if name is None or usage is None:
                    continue
                self.component[pid] = name
                rss, cpu = usage
                self.peak_rss[pid] = max(self.peak_rss.get(pid, 0), rss)
                first = self.cpu.get(pid, (cpu, cpu))[0]
                self.cpu[pid] = (first, cpu)

    def cpu_by_component(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for pid, (first, last) in self.cpu.items():
            totals[self.component[pid]] = totals.get(self.component[pid], 0.0) + last - first
        return totals

    def mark(self, phase: str) -> None:
        """Remember the CPU used so far, so that phase() can tell what one phase cost."""
        self.sample()
        with self._lock:
            self.marks.append((phase, self.cpu_by_component()))

    def phase_cpu(self) -> dict[str, dict[str, float]]:
        """CPU seconds per component between consecutive marks, keyed by the later mark's name."""
        out = {}
        for (_, before), (name, after) in zip(self.marks, self.marks[1:]):
            out[name] = {c: round(after.get(c, 0) - before.get(c, 0), 2) for c in after}
        return out

    def report(self, seconds: float) -> dict[str, dict]:
        """Per component: processes, peak RSS of the largest process and of all together (MB), CPU."""
        with self._lock:
            out: dict[str, dict] = {}
            cpu = self.cpu_by_component()
            for pid, name in self.component.items():
                row = out.setdefault(name, {"processes": 0, "peak_rss_mb": 0.0, "peak_rss_sum_mb": 0.0})
                row["processes"] += 1
                row["peak_rss_mb"] = max(row["peak_rss_mb"], round(self.peak_rss[pid] / 2**20, 1))
                row["peak_rss_sum_mb"] = round(row["peak_rss_sum_mb"] + self.peak_rss[pid] / 2**20, 1)
            for name, row in out.items():
                row["cpu_s"] = round(cpu.get(name, 0.0), 1)
                row["cpu_pct"] = round(100 * cpu.get(name, 0.0) / seconds, 1) if seconds else None
            return dict(sorted(out.items()))
