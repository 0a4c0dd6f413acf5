"""Mount workloads for scripts/bench: ibackup's FUSE mount against local disk, bindfs (a FUSE
passthrough), rclone 1.60 mount of a WebDAV server on loopback (--vfs-cache-mode full,
--vfs-write-back 5s) and, for reads, restic mount of a restic repository.

Each workload runs on every target in turn. "cold" means caches dropped: the kernel page
cache, and the target's own cache emptied and the target remounted. "durable" is the time
until the data is on the target's server (for local disk and bindfs: after sync). Writes
run once; each read step reports the median of up to three runs (`median_of`).
"""

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.request

PASSWORD = "bench password, not a secret"
SEARCH = "zq9_no_such_string_zq9"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def drop_page_cache():
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


def wait_for_mount(path, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.ismount(path):
            return
        time.sleep(0.05)
    raise SystemExit(f"bench: {path} did not mount")


def unmount(path):
    subprocess.run(["fusermount3", "-u", path], stderr=subprocess.DEVNULL)
    subprocess.run(["fusermount", "-u", path], stderr=subprocess.DEVNULL)
    for _ in range(100):
        if not os.path.ismount(path):
            return
        time.sleep(0.05)
    subprocess.run(["fusermount3", "-uz", path], stderr=subprocess.DEVNULL)


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Local:
    name = "local disk"

    def __init__(self, work):
        self.root = tempfile.mkdtemp(prefix="local-", dir=work)

    def path(self):
        return self.root

    def durable(self):
        subprocess.run(["sync"])

    def fresh(self):
        drop_page_cache()

    def close(self):
        pass


class Bindfs(Local):
    name = "bindfs"

    def __init__(self, work):
        super().__init__(work)
        self.mnt = tempfile.mkdtemp(prefix="bindfs-mnt-", dir=work)
        self.mount()

    def mount(self):
        sh(["bindfs", "--no-allow-other", self.root, self.mnt])
        wait_for_mount(self.mnt)

    def path(self):
        return self.mnt

    def fresh(self):
        unmount(self.mnt)
        drop_page_cache()
        self.mount()

    def close(self):
        unmount(self.mnt)


class Rclone:
    name = "rclone mount"

    def __init__(self, work, free_port):
        self.store = tempfile.mkdtemp(prefix="webdav-", dir=work)
        self.cache = tempfile.mkdtemp(prefix="rclone-cache-", dir=work)
        self.mnt = tempfile.mkdtemp(prefix="rclone-mnt-", dir=work)
        port, self.rc = free_port(), free_port()
        self.server = subprocess.Popen(["rclone", "serve", "webdav", "--addr", f"127.0.0.1:{port}", self.store],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}"
        time.sleep(1)
        self.mount()

    def mount(self):
        self.proc = subprocess.Popen(
            ["rclone", "mount", f":webdav,url='{self.url}':", self.mnt, "--vfs-cache-mode", "full",
             "--vfs-write-back", "5s", "--cache-dir", self.cache, "--rc", "--rc-addr",
             f"127.0.0.1:{self.rc}", "--rc-no-auth"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_mount(self.mnt)

    def path(self):
        return self.mnt

    def durable(self):
        time.sleep(0.5)
        while True:
            request = urllib.request.Request(f"http://127.0.0.1:{self.rc}/vfs/stats", data=b"{}",
                                             headers={"Content-Type": "application/json"})
            stats = json.load(urllib.request.urlopen(request))
            cache = stats.get("diskCache", {})
            if cache.get("uploadsInProgress", 0) + cache.get("uploadsQueued", 0) == 0:
                return
            time.sleep(0.1)

    def fresh(self):
        self.durable()
        self.proc.terminate()
        self.proc.wait()
        unmount(self.mnt)
        shutil.rmtree(self.cache, ignore_errors=True)
        os.makedirs(self.cache)
        drop_page_cache()
        self.mount()

    def peak_rss(self):
        return rss_mib(self.proc.pid)

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        unmount(self.mnt)
        self.server.terminate()
        self.server.wait()


class ResticMount:
    """Read-only: serves the data a restic backup stored."""
    name = "restic mount"

    def __init__(self, work, free_port, data):
        self.repo = tempfile.mkdtemp(prefix="restic-repo-", dir=work)
        self.cache = tempfile.mkdtemp(prefix="restic-cache-", dir=work)
        self.mnt = tempfile.mkdtemp(prefix="restic-mnt-", dir=work)
        port = free_port()
        self.server = subprocess.Popen(["rclone", "serve", "restic", "--addr", f"127.0.0.1:{port}", self.repo],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.env = dict(os.environ, RESTIC_PASSWORD=PASSWORD, RESTIC_REPOSITORY=f"rest:http://127.0.0.1:{port}/",
                        RESTIC_CACHE_DIR=self.cache)
        time.sleep(1)
        sh(["restic", "init"], env=self.env, stderr=subprocess.DEVNULL)
        sh(["restic", "backup", "--quiet", *data], env=self.env)
        self.mount()

    def mount(self):
        self.proc = subprocess.Popen(["restic", "mount", self.mnt], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_mount(self.mnt)
        while not os.path.exists(os.path.join(self.mnt, "snapshots", "latest")):
            time.sleep(0.05)

    def where(self, source):
        return os.path.join(self.mnt, "snapshots", "latest", source.lstrip("/"))

    def fresh(self):
        self.proc.terminate()
        self.proc.wait()
        unmount(self.mnt)
        shutil.rmtree(self.cache, ignore_errors=True)
        drop_page_cache()
        self.mount()

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        unmount(self.mnt)
        self.server.terminate()
        self.server.wait()


class IbackupMount:
    """The mount as this process may run it: as root, the kernel writes open files straight to
    their local stage (FUSE passthrough); `passthrough=False` runs it as an ordinary user's
    mount would, without."""
    name = "ibackup"

    def __init__(self, work, free_port, client, server, passthrough=True):
        if not passthrough:
            self.name = NO_PASSTHROUGH
        self.client = client
        self.home = tempfile.mkdtemp(prefix="ib-mount-home-", dir=work)
        self.data = tempfile.mkdtemp(prefix="ib-mount-server-", dir=work)
        self.mnt = os.path.join(self.home, "ibackup")
        self.server = subprocess.Popen([server, "serve", "--data-dir", self.data, "--listen", f"127.0.0.1:{free_port()}"],
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        url = self.server.stdout.readline().split("listening on ", 1)[1].strip()
        self.env = dict(os.environ, HOME=self.home, IBACKUP_PASSWORD=PASSWORD,
                        IBACKUP_CONFIG_DIR=os.path.join(self.home, "config"),
                        IBACKUP_CACHE_DIR=os.path.join(self.home, "cache"))
        if not passthrough:
            self.env["IBACKUP_FUSE_PASSTHROUGH"] = "0"
        sh([client, "register", "--server", url, "--email", "bench@example.com", "--first-name", "B",
            "--last-name", "M", "--trust-new"], env=self.env)
        sh([server, "admin", "--data-dir", self.data, "user", "set-quota", "bench@example.com", "100GiB"])
        self.mount()

    def mount(self):
        sh([self.client, "mount", self.mnt], env=self.env)

    def pid(self):
        status = json.loads(subprocess.run([self.client, "status", "--json"], env=self.env, check=True,
                                           capture_output=True, text=True).stdout)
        return status["mounts"][0]["pid"] if status["mounts"] else None

    def path(self):
        return os.path.join(self.mnt, "Backups")

    def durable(self):
        while True:  # `status` counts the mount's journal, which close already wrote
            status = json.loads(subprocess.run([self.client, "status", "--json"], env=self.env, check=True,
                                               capture_output=True, text=True).stdout)
            if all(m["pending_operations"] == 0 for m in status["mounts"]):
                return
            time.sleep(0.05)

    def fresh(self):
        self.durable()
        sh([self.client, "umount", self.mnt], env=self.env)
        shutil.rmtree(os.path.join(self.home, "cache", ), ignore_errors=True)
        drop_page_cache()
        self.mount()

    def peak_rss(self):
        pid = self.pid()
        return rss_mib(pid) if pid else 0.0

    def close(self):
        subprocess.run([self.client, "umount", self.mnt], env=self.env, stdout=subprocess.DEVNULL)
        self.server.terminate()
        self.server.wait()


def same_start(source):
    """Every target starts a write with nothing dirty left by the one before and the source in
    the page cache: otherwise the last target pays for the others' writeback."""
    drop_page_cache()
    read_all(source)


def read_all(source):
    """Reads every file under source into the page cache. (`tar cf /dev/null` does not: GNU tar
    skips reading file contents when its archive is /dev/null.)"""
    paths = [source] if os.path.isfile(source) else (
        os.path.join(root, name) for root, _, names in os.walk(source) for name in names)
    for path in paths:
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass


def timed(fn):
    start = time.monotonic()
    fn()
    return time.monotonic() - start


REPEATS = 3
LONG = 10.0


def median_of(step, prepare=None):
    """Median seconds of up to REPEATS runs of `step`, each after `prepare`. Runs on this kind
    of VM vary by up to 3x, so one run per step decides little; a run longer than LONG seconds
    varies less and ends the repeats (rclone's cold grep takes minutes)."""
    times = []
    for _ in range(REPEATS):
        if prepare:
            prepare()
        times.append(timed(step))
        if times[-1] > LONG:
            break
    return statistics.median(times)


NO_PASSTHROUGH = "ibackup, no passthrough"


def run_target(target, big, tree, reads_only=False, writes_only=False):
    """Seconds per workload on one target. Writes run once (each needs a new start); reads
    report the median of up to three runs."""
    out = {}
    if reads_only:
        big_path, tree_path = (lambda: target.where(big)), (lambda: target.where(tree))
    else:
        big_path = lambda: os.path.join(target.path(), "big.bin")
        tree_path = lambda: os.path.join(target.path(), "stdlib")
        same_start(big)
        start = time.monotonic()
        shutil.copyfile(big, big_path())
        out["write 1 GiB (returned)"] = time.monotonic() - start
        target.durable()
        out["write 1 GiB (durable)"] = time.monotonic() - start
    if not writes_only:
        out["cold read 1 GiB"] = median_of(lambda: sh(["cat", big_path()]), target.fresh)
        out["warm read 1 GiB"] = median_of(lambda: sh(["cat", big_path()]))
    if not reads_only:
        same_start(tree)
        start = time.monotonic()
        sh(["cp", "-r", tree, tree_path()])
        out["cp -r stdlib (returned)"] = time.monotonic() - start
        target.durable()
        out["cp -r stdlib (durable)"] = time.monotonic() - start
    if writes_only:
        return out
    out["cold ls -lR stdlib"] = median_of(lambda: sh(["ls", "-lR", tree_path()]), target.fresh)
    grep = lambda: subprocess.run(["grep", "-r", "-c", SEARCH, tree_path()], stdout=subprocess.DEVNULL)
    out["cold grep -r stdlib"] = median_of(grep, target.fresh)
    out["warm grep -r stdlib"] = median_of(grep)
    return out


def run(work, free_port, client, server, big_file, tree):
    results, rss = {}, {}
    for make in (lambda: Local(work), lambda: Bindfs(work), lambda: Rclone(work, free_port),
                 lambda: IbackupMount(work, free_port, client, server)):
        target = make()
        try:
            results[target.name] = run_target(target, big_file, tree)
            if hasattr(target, "peak_rss"):
                rss[target.name] = target.peak_rss()
        finally:
            target.close()
    # The write steps again as a mount without CAP_SYS_ADMIN runs them.
    target = IbackupMount(work, free_port, client, server, passthrough=False)
    try:
        results[target.name] = run_target(target, big_file, tree, writes_only=True)
    finally:
        target.close()
    restic = ResticMount(work, free_port, [big_file, tree])
    try:
        results[restic.name] = run_target(restic, big_file, tree, reads_only=True)
    finally:
        restic.close()
    return results, rss


def table(results, rss):
    names = ["local disk", "bindfs", "rclone mount", "restic mount", NO_PASSTHROUGH, "ibackup"]
    steps = list(results["ibackup"].keys())
    lines = ["| workload | " + " | ".join(names) + " | ibackup / rclone | ibackup / best FUSE peer |",
             "|---|" + "---:|" * (len(names) + 2)]
    for step in steps:
        cells = [f"{results[n][step]:.2f}" if step in results.get(n, {}) else "–" for n in names]
        ours = results["ibackup"][step]
        rclone = results["rclone mount"].get(step)
        peers = [results[n][step] for n in ("bindfs", "rclone mount", "restic mount") if step in results.get(n, {})]
        ratio = f"{ours / rclone:.2f}" if rclone else "–"
        best = f"{ours / min(peers):.2f}" if peers else "–"
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {ratio} | {best} |")
    lines.append("")
    lines.append("Peak RSS (MiB): " + ", ".join(f"{n} {v:.0f}" for n, v in rss.items()))
    return "\n".join(lines)
