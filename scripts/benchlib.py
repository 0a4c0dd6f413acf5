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


class Postgres:
    """A PostgreSQL cluster of its own (Debian's binaries, `initdb` in a temporary folder),
    on a free loopback port, run as the `postgres` user when this runs as root."""

    def __init__(self, workdir):
        import glob
        import shutil
        import subprocess
        import tempfile
        import time
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise SystemExit("no PostgreSQL (/usr/lib/postgresql/*/bin); run scripts/setup")
        self.bin = os.path.dirname(found[-1])
        self.dir = tempfile.mkdtemp(prefix="postgres-", dir=workdir)
        os.chmod(self.dir, 0o755)
        self.data = os.path.join(self.dir, "data")
        os.mkdir(self.data)
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(self.as_user + [f"{self.bin}/initdb", "-D", self.data, "-U", "postgres",
                                       "--auth=trust", "-E", "UTF8", "--no-instructions"],
                       check=True, stdout=subprocess.DEVNULL)
        self.port = free_port()
        self.log = open(os.path.join(self.dir, "postgres.log"), "w")
        self.proc = subprocess.Popen(
            self.as_user + [f"{self.bin}/postgres", "-D", self.data, "-p", str(self.port),
                            "-k", self.data, "-c", "listen_addresses=127.0.0.1",
                            "-c", "max_connections=300"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(300):
            ready = subprocess.run([f"{self.bin}/pg_isready", "-q", "-h", "127.0.0.1",
                                    "-p", str(self.port)])
            if ready.returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise SystemExit(f"PostgreSQL did not start; see {self.dir}/postgres.log")

    def create(self, name):
        """A new database `name`; its URL."""
        import subprocess
        subprocess.run([f"{self.bin}/createdb", "-h", "127.0.0.1", "-p", str(self.port),
                        "-U", "postgres", name], check=True)
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def close(self):
        import shutil
        self.proc.terminate()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
