"""Before/after of the Python binding's echo server against uvloop, in one run.

    python3 bench/python/ab_echo.py --loadgen build-bench/bench/loadgen \
        --server new=VENV_NEW/bin/python --server old=VENV_OLD/bin/python \
        --uvloop VENV_NEW/bin/python [--epoll build-bench/bench/epoll_echo] \
        [--rounds 5] [--duration 2] [--warmup 0.5] [--flavours ct,1]

Each --server is an interpreter with one build of the package installed
(pip install . of each tree into its own venv); every server runs
bench/python/echo_ekiden.py as bench/python/run.sh does (the current-thread
runtime "ct" and/or one worker "1"), uvloop runs echo_asyncio.py, all driven
by bench/loadgen: 64 B and 4 KiB, 1 and 100 connections. Each round runs
every server once, rotated; the single-connection rows pin the server to
core 0 and loadgen to core 1 (as run.sh's BENCH_PIN). Printed: req/s median
[min-max], the server's CPU µs per request (utime+stime of all its threads
over the loadgen run, warm-up included, per measured request scaled as
run.sh does), and each server's ratio to uvloop per round (the median
[min-max] of the rounds' ratios: both sides of a ratio ran in the same
round). Hold /work/bench.lock around it on a shared machine.
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int:
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    except OSError:
        pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: List[str]) -> Tuple[subprocess.Popen, int]:  # type: ignore[type-arg]
    for _ in range(5):
        port = free_port()
        p = subprocess.Popen([a.replace("PORT", str(port)) for a in cmd],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return p, port
            except OSError:
                if p.poll() is not None:
                    break
                time.sleep(0.05)
        p.kill()
        p.wait()
    raise SystemExit(f"server did not start: {cmd}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loadgen", required=True)
    ap.add_argument("--server", action="append", default=[], help="TAG=PYTHON")
    ap.add_argument("--uvloop", required=True, help="a python with uvloop")
    ap.add_argument("--epoll", default=None)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--flavours", default="ct,1")
    ap.add_argument("--rows", default="64x1,64x100,4096x1,4096x100")
    a = ap.parse_args()
    cmds: Dict[str, List[str]] = {}
    for spec in a.server:
        tag, py = spec.split("=", 1)
        for fl in a.flavours.split(","):
            cmds[f"{tag} {fl}"] = [py, f"{HERE}/echo_ekiden.py", "PORT", fl]
    cmds["uvloop"] = [a.uvloop, f"{HERE}/echo_asyncio.py", "PORT", "uvloop"]
    if a.epoll:
        cmds["epoll"] = [a.epoll, "127.0.0.1:PORT", "1"]
    procs: Dict[str, Tuple[subprocess.Popen, int]] = {}  # type: ignore[type-arg]
    try:
        for tag, cmd in cmds.items():
            procs[tag] = start(cmd)
        tags = list(cmds)
        ncpu = os.cpu_count() or 1
        print(f"\nEcho A/B, {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, load average "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])}, {a.rounds} rounds of "
              f"{a.duration:g} s per cell (rotated); req/s median [min-max], server CPU µs/request "
              f"(median); ratio to uvloop: median [min-max] of the rounds' ratios.\n")
        print("| row | " + " | ".join(tags) + " | " +
              " | ".join(f"{t} / uvloop" for t in tags if t != "uvloop") + " |")
        print("|---|" + "---:|" * (2 * len(tags) - 1))
        for row in a.rows.split(","):
            size, conns = (int(x) for x in row.split("x"))
            rps: Dict[str, List[float]] = {t: [] for t in tags}
            cpu: Dict[str, List[float]] = {t: [] for t in tags}
            for r in range(a.rounds):
                for k in range(len(tags)):
                    tag = tags[(k + r) % len(tags)]
                    p, port = procs[tag]
                    pre: List[str] = []
                    pinned = conns == 1 and ncpu >= 2
                    if pinned:
                        subprocess.run(["taskset", "-a", "-p", "-c", "0", str(p.pid)],
                                       stdout=subprocess.DEVNULL, check=False)
                        pre = ["taskset", "-c", "1"]
                    c0 = cpu_ticks(p.pid)
                    out = subprocess.run(pre + [a.loadgen, "echo", f"127.0.0.1:{port}", "-c",
                                                str(conns), "-s", str(size), "-d", str(a.duration),
                                                "-w", str(a.warmup)],
                                         capture_output=True, text=True, check=False).stdout
                    c1 = cpu_ticks(p.pid)
                    if pinned:
                        subprocess.run(["taskset", "-a", "-p", "-c", f"0-{ncpu - 1}", str(p.pid)],
                                       stdout=subprocess.DEVNULL, check=False)
                    f = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
                    req = int(f.get("requests", 0))
                    rps[tag].append(float(f.get("req_per_s", 0)))
                    scale = (a.duration + a.warmup) / a.duration
                    cpu[tag].append((c1 - c0) / HZ * 1e6 / (req * scale) if req else 0.0)
            cells = [f"{statistics.median(rps[t]):,.0f} [{min(rps[t]):,.0f}–{max(rps[t]):,.0f}] "
                     f"{statistics.median(cpu[t]):.1f} µs" for t in tags]
            ratios = []
            for t in tags:
                if t == "uvloop":
                    continue
                rr = [x / u for x, u in zip(rps[t], rps["uvloop"]) if u > 0]
                ratios.append(f"{statistics.median(rr):.2f} [{min(rr):.2f}–{max(rr):.2f}]"
                              if rr else "n/a")
            print(f"| {size} B x{conns} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |",
                  flush=True)
    finally:
        for p, _ in procs.values():
            p.send_signal(2)
        for p, _ in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
    sys.exit(0)
