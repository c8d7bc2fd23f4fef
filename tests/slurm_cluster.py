"""A throw-away single-node SLURM (with accounting) in one folder, for tests and for trying the
SLURM profile on a laptop. Needs root and Debian's `slurm-wlm slurmdbd munge mariadb-server`.

    sudo python -m tests.slurm_cluster /tmp/slurm       # start, print how to use it, wait for Ctrl-C

Everything lives under the folder: its own munge key and socket, a MariaDB with its own datadir
and socket, slurmdbd, slurmctld and slurmd with their own config, state, spool and logs, all on
free ports chosen at start (never SLURM's defaults), so it cannot clash with a SLURM already on
the machine. Point the SLURM commands at it with ``SLURM_CONF=<folder>/slurm.conf`` and
``PATH=<folder>/bin:$PATH`` (wrappers that keep SLURM_CONF inside jobs). Every daemon
it started is stopped by PID in `stop()` (also on Ctrl-C and when a `with` block exits).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLIENTS = ["sbatch", "srun", "sacct", "squeue", "scancel", "sinfo", "scontrol", "sacctmgr", "sshare"]
PACKAGES = ["slurm-wlm", "slurmdbd", "munge", "mariadb-server"]
COMMANDS = ["slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd", "mariadb-install-db", "sbatch", "sacct"]
CLUSTER = "protolibtest"
PARTITION = "main"
# the node: room for three GPU jobs (the profile's cpus_per_gpu 4, 8000 MB each) so that only
# the two stand-in GPUs keep a third waiting; declared bigger than the machine (config_overrides)
NODE_CPUS = 12
NODE_MEM_MB = 24000
#: two stand-in GPUs of one type: gres/gpu needs device files, and any will do (nothing uses them)
GPU_TYPE = "tesla"
GPU_FILES = ("/dev/null", "/dev/zero")


class ClusterError(RuntimeError):
    """SLURM could not be brought up; the message says which step and where its log is."""


def missing_commands() -> list[str]:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [c for c in COMMANDS if shutil.which(c, path=path) is None]


def install_packages() -> None:
    """apt-get install the packages (as root), refreshing the lists once if the first try fails."""
    if os.geteuid() != 0:
        raise ClusterError(f"SLURM commands missing ({missing_commands()}) and not root to install {PACKAGES}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ClusterError(f"apt-get install {' '.join(PACKAGES)} failed:\n{proc.stderr[-2000:]}")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def sbin(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise ClusterError(f"{name} not found (install {' '.join(PACKAGES)})")
    return found


@dataclass
class SlurmCluster:
    """One node (`NODE_CPUS` CPUs, `NODE_MEM_MB` MB, two stand-in GPUs of type `GPU_TYPE`) in one
    partition, with accounting (sacct's AllocTRES shows gres/gpu). A job granted a GPU gets
    CUDA_VISIBLE_DEVICES (0 or 1) as on a real GPU node, but no CUDA behind it."""

    root: Path
    node_cpus: int = NODE_CPUS
    node_mem_mb: int = NODE_MEM_MB
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def env(self) -> dict[str, str]:
        """os.environ pointed at this cluster: SLURM_CONF, and `bin` (the client wrappers) first
        on PATH; without a caller's own SLURM_* job variables."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")])
        return env

    def _write_client_wrappers(self) -> None:
        """`bin/<command>` runs the SLURM client with SLURM_CONF set. Needed inside jobs: the
        slurm-jobstep plugin (0.6.1) drops every SLURM_* variable, SLURM_CONF too, before its
        nested `srun`; a real cluster's config in /etc/slurm (or configless) does not need this."""
        self.bin.mkdir(exist_ok=True)
        for name in CLIENTS:
            real = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/bin")
            if real is None:
                continue
            wrapper = self.bin / name
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF={self.conf} exec {real} "$@"\n')
            wrapper.chmod(0o755)

    # ------------------------------------------------------------------ start
    def start(self, timeout: float = 120) -> SlurmCluster:
        if os.geteuid() != 0:
            raise ClusterError("starting SLURM needs root (slurmd runs the jobs as their user)")
        if missing_commands():
            install_packages()
        self.root.mkdir(parents=True, exist_ok=True)
        for d in ("munge", "mysql", "state", "spool", "log", "run"):
            (self.root / d).mkdir(exist_ok=True)
        self.ctld_port, self.slurmd_port, self.dbd_port, self.db_port = free_ports(4)
        try:
            self._start_munge()
            self._start_mariadb(timeout)
            self._write_configs()
            self._write_client_wrappers()
            self._start("slurmdbd", [sbin("slurmdbd"), "-D"])  # reads slurmdbd.conf next to SLURM_CONF
            self._wait(lambda: self._ok(["sacctmgr", "-n", "list", "cluster"]), "slurmdbd", timeout)
            self._run(["sacctmgr", "-i", "add", "cluster", CLUSTER], check=False)
            self._run(["sacctmgr", "-i", "add", "account", "protolib", f"cluster={CLUSTER}"], check=False)
            self._run(["sacctmgr", "-i", "add", "user", "root", "account=protolib", f"cluster={CLUSTER}"], check=False)
            self._start("slurmctld", [sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait(lambda: self._ok(["scontrol", "ping"]), "slurmctld", timeout)
            self._start("slurmd", [sbin("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
            self._wait(self._node_idle, "slurmd", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self) -> None:
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._start(
            "munged",
            [
                sbin("munged"),
                "-F",
                "--force",
                f"--key-file={key}",
                f"--socket={self.munge_socket}",
                f"--pid-file={self.root / 'run' / 'munged.pid'}",
                f"--log-file={self.root / 'log' / 'munged.log'}",
                f"--seed-file={self.root / 'munge' / 'munged.seed'}",
            ],
        )
        self._wait(self.munge_socket.exists, "munged", 30)

    def _start_mariadb(self, timeout: float) -> None:
        datadir = self.root / "mysql"
        self.db_socket = self.root / "run" / "mysqld.sock"
        if not (datadir / "mysql").exists():
            self._run(
                [
                    sbin("mariadb-install-db"),
                    "--no-defaults",
                    "--user=root",
                    f"--datadir={datadir}",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ]
            )
        self._start(
            "mariadbd",
            [
                sbin("mariadbd"),
                "--no-defaults",
                "--user=root",
                f"--datadir={datadir}",
                f"--socket={self.db_socket}",
                f"--port={self.db_port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.root / 'run' / 'mysqld.pid'}",
                f"--log-error={self.root / 'log' / 'mariadb.log'}",
                "--innodb-buffer-pool-size=64M",
                "--innodb-lock-wait-timeout=900",
                "--skip-log-bin",
            ],
        )
        sql = "CREATE USER IF NOT EXISTS 'slurm'@'%' IDENTIFIED BY 'slurm'; GRANT ALL ON *.* TO 'slurm'@'%';"
        client = [shutil.which("mariadb") or "mysql", f"--socket={self.db_socket}", "-uroot", "-e", sql]
        self._wait(lambda: subprocess.run(client, capture_output=True).returncode == 0, "mariadbd", timeout)

    def _write_configs(self) -> None:
        r = self.root
        self.node = socket.gethostname().split(".")[0]
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        dbd = r / "slurmdbd.conf"
        dbd.write_text(
            auth
            + f"DbdHost=localhost\nDbdPort={self.dbd_port}\nSlurmUser=root\n"
            + f"PidFile={r / 'run' / 'slurmdbd.pid'}\nLogFile={r / 'log' / 'slurmdbd.log'}\n"
            + "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            + f"StoragePort={self.db_port}\nStorageUser=slurm\nStoragePass=slurm\nStorageLoc=slurm_acct_db\n"
        )
        dbd.chmod(0o600)  # slurmdbd refuses a config others can read (it holds the DB password)
        (r / "gres.conf").write_text("".join(f"Name=gpu Type={GPU_TYPE} File={f}\n" for f in GPU_FILES))
        self.conf.write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost={self.node}(127.0.0.1)\n"
            + auth
            + "CredType=cred/munge\nSlurmUser=root\nSlurmdUser=root\n"
            + f"SlurmctldPort={self.ctld_port}\nSlurmdPort={self.slurmd_port}\n"
            + f"StateSaveLocation={r / 'state'}\nSlurmdSpoolDir={r / 'spool'}\n"
            + f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}\nSlurmdPidFile={r / 'run' / 'slurmd.pid'}\n"
            + f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}\nSlurmdLogFile={r / 'log' / 'slurmd.log'}\n"
            + "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
            + "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
            + "SchedulerType=sched/backfill\nReturnToService=2\nKillWait=5\nInactiveLimit=0\n"
            + "JobAcctGatherType=jobacct_gather/none\nJobCompType=jobcomp/none\n"
            # sacct shows the plugin's --comment (rule_<rule>_wildcards_...), which names the rule
            + "AccountingStoreFlags=job_comment\n"
            # GPUs: gres counted and accounted; jobs without --mem get 1000 MB per CPU, not the node
            + f"GresTypes=gpu\nAccountingStorageTRES=gres/gpu,gres/gpu:{GPU_TYPE}\nDefMemPerCPU=1000\n"
            + "AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
            + f"AccountingStoragePort={self.dbd_port}\n"
            # the munge socket for talking to slurmdbd (AuthInfo covers only slurmctld/slurmd)
            + f"AccountingStoragePass={self.munge_socket}\n"
            # the node may be declared bigger than the machine (CI runners with 1 CPU)
            + "SlurmdParameters=config_overrides\n"
            + f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.node_cpus} RealMemory={self.node_mem_mb} "
            + f"Gres=gpu:{GPU_TYPE}:{len(GPU_FILES)} State=UNKNOWN\n"
            + f"PartitionName={PARTITION} Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
        )

    # ------------------------------------------------------------------ helpers
    def _start(self, name: str, cmd: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "ab")  # noqa: SIM115 - the daemon writes to it after this returns
        self.procs[name] = subprocess.Popen(
            cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
        return proc

    def _ok(self, cmd: list[str]) -> bool:
        try:
            return self._run(cmd, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _node_idle(self) -> bool:
        out = self._run(["sinfo", "-h", "-N", "-o", "%t"], check=False).stdout.split()
        return out == ["idle"]

    def _wait(self, ready, name: str, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not ready():
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is not None:
                raise ClusterError(f"{name} exited with {proc.returncode}; see {self.root / 'log'}")
            if time.monotonic() > end:
                raise ClusterError(f"{name} not ready after {timeout:.0f} s; see {self.root / 'log'}")
            time.sleep(0.5)

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        """Stop every daemon this cluster started, by PID, newest first (jobs are cancelled first)."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            self._ok(["scancel", "--full", f"--partition={PARTITION}"])
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs.clear()

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "/tmp/protolib-slurm").resolve()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # also when started in the background
        signal.signal(sig, interrupt)
    with SlurmCluster(root) as cluster:
        print(
            f"SLURM is up. In another shell:\n  export SLURM_CONF={cluster.conf} PATH={cluster.bin}:$PATH\n  sinfo\n"
            f"Ctrl-C stops it (logs in {root / 'log'}).",
            flush=True,
        )
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
