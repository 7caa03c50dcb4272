#!/usr/bin/env python3
"""Runs a command and prints its resident set as it changes: where a peak comes from.

Every 10 ms it reads /proc/PID/status and prints a line when VmRSS has moved by 4 MiB
or more since the last line: the time since the start, VmRSS, its anonymous and
file-backed parts (RssAnon, RssFile: a mapped snapshot's pages are file-backed) and
the high-water mark VmHWM. The command's stderr lines are printed with their time, so
that the figures can be put beside its progress notes; its stdout is discarded. A
diagnostic, not a benchmark: the sampler itself takes CPU from the command.

usage: bench/rss-sample.py CMD [ARG...]
"""
import subprocess
import sys
import threading
import time

t0 = time.time()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stderr_lines():
    for line in p.stderr:
        print(f"{time.time() - t0:7.2f} stderr: {line.decode().rstrip()[:150]}", flush=True)


threading.Thread(target=stderr_lines, daemon=True).start()
last = 0
while p.poll() is None:
    try:
        with open(f"/proc/{p.pid}/status") as f:
            st = dict(line.split(":", 1) for line in f)
        mib = {k: int(st[k].split()[0]) // 1024 for k in ("VmRSS", "RssAnon", "RssFile", "VmHWM")}
        if abs(mib["VmRSS"] - last) >= 4:
            print(f"{time.time() - t0:7.2f} rss {mib['VmRSS']} MiB (anon {mib['RssAnon']}, "
                  f"file {mib['RssFile']}) hwm {mib['VmHWM']}", flush=True)
            last = mib["VmRSS"]
    except (OSError, KeyError, ValueError):
        pass  # between exit and reaping
    time.sleep(0.01)
print(f"{time.time() - t0:7.2f} exit {p.returncode}")
