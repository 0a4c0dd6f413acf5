"""`scripts/bench --only s3`: backup, re-backup, restore and check with packs on Garage.

Side by side: ibackup with packs in its local folder, ibackup with packs on a single-node
Garage on loopback (plain HTTP), and restic with its repository in the same Garage (its
`s3:` backend). The ratios say what the S3 store costs ibackup, and how ibackup on S3
compares with restic on S3. Garage is the one `scripts/setup` builds.
"""

import os
import shutil
import subprocess
import tempfile
import time

GARAGE = os.path.join(os.environ.get("IBACKUP_TOOLS", "/opt/ibackup-tools"), "bin", "garage")
STEPS = ("first backup", "unchanged re-backup", "restore", "check --read-data")
# ibackup on Garage against restic on Garage.
GOALS = {"first backup": 1.0, "unchanged re-backup": 0.5, "restore": 1.0,
         "check --read-data": 1.0}


class Garage:
    """A single-node Garage cluster with bucket `bench` and a key that may use it."""

    def __init__(self, workdir, free_port):
        if not os.path.exists(GARAGE):
            raise SystemExit(f"bench: no Garage at {GARAGE}; run scripts/setup")
        self.dir = tempfile.mkdtemp(prefix="garage-", dir=workdir)
        rpc, s3, admin = free_port(), free_port(), free_port()
        self.config = os.path.join(self.dir, "garage.toml")
        with open(self.config, "w") as f:
            f.write(f"""metadata_dir = "{self.dir}/meta"
data_dir = "{self.dir}/data"
db_engine = "sqlite"
metadata_fsync = true
data_fsync = true
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{os.urandom(32).hex()}"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:{admin}"
""")
        self.log = open(os.path.join(self.dir, "garage.log"), "w")
        self.proc = subprocess.Popen([GARAGE, "-c", self.config, "server"],
                                     stdout=subprocess.DEVNULL, stderr=self.log,
                                     env=dict(os.environ, RUST_LOG="garage=warn"))
        for _ in range(300):
            if subprocess.run([GARAGE, "-c", self.config, "status"], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        node = self.cli("node", "id", "-q").split("@")[0].strip()
        self.cli("layout", "assign", "-z", "dc1", "-c", "100G", node)
        self.cli("layout", "apply", "--version", "1")
        self.cli("bucket", "create", "bench")
        key = self.cli("key", "create", "bench-key")
        fields = dict(line.split(":", 1) for line in key.splitlines() if ":" in line)
        self.key_id, self.secret = fields["Key ID"].strip(), fields["Secret key"].strip()
        self.cli("bucket", "allow", "--read", "--write", "--owner", "bench", "--key", "bench-key")
        self.endpoint = f"http://127.0.0.1:{s3}"

    def cli(self, *args):
        done = subprocess.run([GARAGE, "-c", self.config, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"bench: garage {' '.join(args)} failed:\n{done.stderr}")
        return done.stdout

    def env(self):
        return {"AWS_ACCESS_KEY_ID": self.key_id, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_DEFAULT_REGION": "garage"}

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def steps(tool, path, workdir, warm):
    warm(path)
    first = tool.backup(path)
    again = tool.backup(path)
    target = tempfile.mkdtemp(prefix="restore-", dir=workdir)
    restored = tool.restore(path, target)
    shutil.rmtree(target)
    checked = tool.check()
    return dict(zip(STEPS, (first, again, restored, checked)))


def run(workdir, data, free_port, warm, make_ibackup, make_restic):
    """`make_ibackup(extra_server_args, env)` and `make_restic(repository, env)` start the
    tools; returns the table."""
    rows = []
    for label, path in data.items():
        results = {}
        local = make_ibackup([], {})
        try:
            results["local"] = steps(local, path, workdir, warm)
        finally:
            local.close()
        garage = Garage(workdir, free_port)
        try:
            on_s3 = make_ibackup(["--blob-store", "s3://bench/ibackup", "--s3-endpoint",
                                  garage.endpoint, "--s3-region", "garage"], garage.env())
            try:
                results["garage"] = steps(on_s3, path, workdir, warm)
            finally:
                on_s3.close()
            restic = make_restic(f"s3:{garage.endpoint}/bench/restic", garage.env())
            try:
                results["restic"] = steps(restic, path, workdir, warm)
            finally:
                restic.close()
        finally:
            garage.close()
        for step in STEPS:
            local_s, s3_s, restic_s = (results[k][step][0] for k in ("local", "garage", "restic"))
            rows.append((label, step, local_s, s3_s, restic_s, results["garage"][step][1]))
    lines = ["| workload | step | ibackup local s | ibackup Garage s | restic Garage s | "
             "Garage / local | ibackup / restic on Garage | goal | ibackup Garage RSS MiB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, step, local_s, s3_s, restic_s, rss in rows:
        ratio = s3_s / restic_s if restic_s > 0 else float("inf")
        mark = "ok" if ratio <= GOALS[step] else "MISSED"
        lines.append(f"| {label} | {step} | {local_s:.2f} | {s3_s:.2f} | {restic_s:.2f} | "
                     f"{s3_s / local_s:.2f} | {ratio:.2f} | ≤ {GOALS[step]:g} {mark} | {rss:.0f} |")
    return "\n".join(lines)
