"""Metadata and concurrency workloads for scripts/bench (issue 13).

(a) Metadata, in the style of mdtest: 10,000 files created, stat'ed, read and removed, as
    operations per second, empty and 4 KiB, in one folder and in a 3-level tree (10 x 10
    folders of 100 files); local disk, bindfs, rclone mount and ibackup side by side. Goal:
    ibackup >= bindfs on every row, and >= 1,500 creates/s.
(b) Parallel cold reads: 4 readers of 4 different 256 MiB files at once against one reader
    of one, aggregate MiB/s, ibackup and rclone mount. Goal: ibackup's aggregate >= 2x one
    reader's.
(c) `stat` latency of cached files (each past the kernel's attribute cache, so every call
    reaches the mount) while a cold 1 GiB read runs, p50 and p99 in ms. Goal: p99 <= 5 ms.

Each layout runs three times per target, each time in a fresh folder, and each row reports
the median of the three (single runs on this VM varied by up to 10x); the stat phase
follows the create phase (attributes as the kernel cached them at create time), as in
mdtest. rclone mount, which
uploads each new file by itself, runs a tenth of the files (1,000: 10 x 10 folders of 10),
which took it about 3 minutes per layout at full size; its rows are still per second.
"""

import os
import statistics
import subprocess
import threading
import time

import bench_mount

FILES = 10_000
SMALL = 4096
PART = 256 << 20
GOAL_CREATES = 1500


def layout(root, tree, files):
    """The paths of `files` files below root: all in one folder, or spread over 10 x 10."""
    if not tree:
        return [os.path.join(root, f"f{i:05}") for i in range(files)]
    paths = []
    for a in range(10):
        for b in range(10):
            for i in range(files // 100):
                paths.append(os.path.join(root, f"d{a}", f"d{b}", f"f{i:03}"))
    return paths


REPEATS = 3


def metadata_rows(base, files=FILES):
    """(row label, median ops/s) for each phase of each layout and size, below `base`."""
    runs = [metadata_run(os.path.join(base, f"run{i}"), files) for i in range(REPEATS)]
    return [(label, statistics.median(run[i][1] for run in runs))
            for i, (label, _) in enumerate(runs[0])]


def metadata_run(base, files):
    """(row label, ops/s) for each phase of each layout and size, below `base`."""
    rows = []
    payload = b"x" * SMALL
    for tree in (False, True):
        for size in (0, SMALL):
            shape = "3-level tree" if tree else "one folder"
            kind = "4 KiB" if size else "empty"
            root = os.path.join(base, f"meta-{int(tree)}-{size}")
            os.makedirs(root)
            if tree:
                for a in range(10):
                    for b in range(10):
                        os.makedirs(os.path.join(root, f"d{a}", f"d{b}"))
            paths = layout(root, tree, files)

            def create():
                for path in paths:
                    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644)
                    if size:
                        os.write(fd, payload)
                    os.close(fd)

            def stat():
                for path in paths:
                    os.stat(path)

            def read():
                for path in paths:
                    with open(path, "rb") as f:
                        f.read()

            def remove():
                for path in paths:
                    os.unlink(path)

            for phase, step in (("create", create), ("stat", stat), ("read", read),
                                ("remove", remove)):
                seconds = bench_mount.timed(step)
                rows.append((f"{phase} {kind}, {shape}", len(paths) / seconds))
    return rows


def write_parts(target, source):
    """Four 256 MiB files (slices of the 1 GiB source) in the target; their paths."""
    paths = []
    with open(source, "rb") as f:
        for i in range(4):
            path = os.path.join(target.path(), f"part{i}.bin")
            with open(path, "wb") as out:
                left = PART
                while left:
                    chunk = f.read(min(left, 8 << 20))
                    out.write(chunk)
                    left -= len(chunk)
            paths.append(path)
    target.durable()
    return paths


def cat(path):
    subprocess.run(["cat", path], check=True, stdout=subprocess.DEVNULL)


def parallel_cold(target, paths):
    """(one reader's MiB/s, four readers' aggregate MiB/s), each from a cold start."""
    target.fresh()
    one = PART / (1 << 20) / bench_mount.timed(lambda: cat(paths[0]))
    target.fresh()

    def four():
        threads = [threading.Thread(target=cat, args=(p,)) for p in paths]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    aggregate = 4 * PART / (1 << 20) / bench_mount.timed(four)
    return one, aggregate


def stat_latency(target, big):
    """p50 and p99 ms of `stat` on cached files while `big` is read cold, and idle."""
    folder = os.path.join(target.path(), "stat-probe")
    os.makedirs(folder, exist_ok=True)
    names = [os.path.join(folder, f"s{i:04}") for i in range(2000)]
    for path in names:
        open(path, "wb").close()
    target.durable()
    target.fresh()
    for path in names:  # now in the mount's model; the kernel forgets them within a second
        os.stat(path)

    def sample(seconds):
        samples, i = [], 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            os.stat(names[i % len(names)])
            samples.append((time.perf_counter() - start) * 1000)
            i += 1
            time.sleep(0.001)
        return samples

    time.sleep(1.2)
    idle = sample(1.0)
    time.sleep(1.2)
    reader = threading.Thread(target=cat, args=(big,))
    reader.start()
    busy = sample(2.0)
    reader.join()
    q = lambda s, p: statistics.quantiles(s, n=100)[p - 1]
    return q(idle, 50), q(idle, 99), q(busy, 50), q(busy, 99), len(busy)


def run(work, free_port, client, server, big_file):
    """The three tables as markdown."""
    meta = {}
    for make in (lambda: bench_mount.Local(work), lambda: bench_mount.Bindfs(work),
                 lambda: bench_mount.Rclone(work, free_port),
                 lambda: bench_mount.IbackupMount(work, free_port, client, server)):
        target = make()
        try:
            files = FILES // 10 if target.name == "rclone mount" else FILES
            meta[target.name] = metadata_rows(target.path(), files)
        finally:
            target.close()
    names = ["local disk", "bindfs", "rclone mount", "ibackup"]
    lines = ["| ops/s | " + " | ".join(names) + " | ibackup / bindfs | goal |",
             "|---|" + "---:|" * (len(names) + 2)]
    for i, (label, _) in enumerate(meta["ibackup"]):
        values = [meta[n][i][1] for n in names]
        ratio = values[3] / values[1]
        goal_ok = ratio >= 1 and (not label.startswith("create") or values[3] >= GOAL_CREATES)
        lines.append(f"| {label} | " + " | ".join(f"{v:,.0f}" for v in values)
                     + f" | {ratio:.2f} | {'ok' if goal_ok else 'MISSED'} |")
    tables = ["\n".join(lines)]

    parallel = {}
    latency = None
    for make in (lambda: bench_mount.Rclone(work, free_port),
                 lambda: bench_mount.IbackupMount(work, free_port, client, server)):
        target = make()
        try:
            paths = write_parts(target, big_file)
            parallel[target.name] = parallel_cold(target, paths)
            if target.name == "ibackup":
                big = os.path.join(target.path(), "big.bin")
                bench_mount.sh(["cp", big_file, big])
                latency = stat_latency(target, big)
        finally:
            target.close()
    lines = ["| cold reads of 256 MiB files | rclone mount | ibackup | goal |", "|---|---:|---:|---:|"]
    one_r, four_r = parallel["rclone mount"]
    one_i, four_i = parallel["ibackup"]
    lines.append(f"| one reader, MiB/s | {one_r:.0f} | {one_i:.0f} | |")
    lines.append(f"| four readers at once, aggregate MiB/s | {four_r:.0f} | {four_i:.0f} | |")
    mark = "ok" if four_i >= 2 * one_i else "MISSED"
    lines.append(f"| aggregate / one | {four_r / one_r:.2f} | {four_i / one_i:.2f} | >= 2 {mark} |")
    tables.append("\n".join(lines))

    p50_idle, p99_idle, p50, p99, count = latency
    mark = "ok" if p99 <= 5 else "MISSED"
    tables.append("\n".join([
        "| `stat` of a cached file, ms (ibackup) | p50 | p99 | goal |", "|---|---:|---:|---:|",
        f"| idle | {p50_idle:.2f} | {p99_idle:.2f} | |",
        f"| during a cold 1 GiB read ({count} calls) | {p50:.2f} | {p99:.2f} | p99 <= 5 {mark} |"]))
    return "\n\n".join(tables)
