"""What `scripts/bench` and `scripts/load` share: free loopback ports, and writing a
measured table into docs/BENCHMARKS.md between its markers."""

import datetime
import os
import platform
import socket
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIB = 1 << 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record(table, marker, end, command):
    """Replaces the table between `marker` and the next `end` in docs/BENCHMARKS.md, with
    when, where and by which `command` it was measured; the text around it (headings,
    goals, notes) stays."""
    path = os.path.join(ROOT, "docs", "BENCHMARKS.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    head, found, rest = text.partition(marker)
    if not found:
        sys.exit(f"{command}: {marker} is missing from {path}; add it (and {end}) where the "
                 "table goes")
    _, found, tail = rest.partition(end)
    if not found:
        sys.exit(f"{command}: {end} is missing after {marker} in {path}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, " \
              f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GIB)} GiB RAM"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{head}{marker}\nMeasured {stamp} on {machine} (`{command} --record`).\n\n"
                f"{table}\n{end}{tail}")
