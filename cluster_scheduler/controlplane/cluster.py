"""A real, throwaway Kubernetes control plane (etcd + kube-apiserver) on loopback.

Tests and benchmarks talk to the same apiserver code that production clusters run, so watch
semantics, `pods/binding` conflicts, RBAC and throttling are the real ones rather than a fake's.
Nothing here is for production: etcd runs without fsync and the data directory is wiped on stop.

The processes' PIDs (with their kernel start times, so that a recycled PID is never signalled),
ports and kubeconfig paths are written to `<workdir>/state.json`, so another process (the
`controlplane down|status` commands) can find and stop them.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from cluster_scheduler.api.rest import api_client
from cluster_scheduler.controlplane.binaries import Binaries, ControlPlaneError, find_binaries
from cluster_scheduler.resources import resource_path

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

STATE_FILE = "state.json"
SCHEDULER_SA_NAMESPACE = "kube-system"
SCHEDULER_SA_NAME = "cluster-scheduler"
# TokenRequest expiry for the scheduler's ServiceAccount token: long enough for any benchmark run.
SCHEDULER_TOKEN_SECONDS = 365 * 24 * 3600
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Admission plugins whose controllers are not running here (scheduler_perf disables the same set):
# ServiceAccount would reject pods until a token controller creates the `default` ServiceAccount;
# TaintNodesByCondition would taint every new Node not-ready with no node-lifecycle controller to
# lift the taint; Priority would reject pods that set spec.priority without a PriorityClass.
DISABLED_ADMISSION = ("ServiceAccount", "TaintNodesByCondition", "Priority")
# The gang API (KEP-4671): beta in 1.37 but off by default, so both the API group version and the
# feature gate must be turned on; the peer kube-scheduler runs with the same gates, so both
# schedulers see the same objects and fields (Pod.spec.schedulingGroup is dropped without the gate).
FEATURE_GATES = ("GenericWorkload=true", "TopologyAwareWorkloadScheduling=true")
RUNTIME_CONFIG = ("scheduling.k8s.io/v1beta1=true",)
# Throttles that cap a single client far below what etcd can take (what kwokctl lifts too).
BENCH_APISERVER_ARGS = (
    "--max-requests-inflight=0",
    "--max-mutating-requests-inflight=0",
    "--enable-priority-and-fairness=false",
)


# ----------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a live PID, None if there is no such process."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = data.rsplit(")", 1)[1].split()  # the command name may contain spaces and parentheses
    return fields[0], int(fields[19])


def _die_with_parent() -> Any:
    """A preexec_fn asking Linux to SIGKILL the child when this process dies, so a crashed or
    killed test run leaves no apiserver behind. SIGKILL, not SIGTERM: all children get the signal
    at once, and an apiserver whose etcd vanishes mid-shutdown hangs; the data is throwaway anyway.
    libc is resolved here, before fork."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # parent died between fork and prctl
            os._exit(1)

    return preexec


@dataclass
class ManagedProcess:
    """One control-plane process: enough to find, check and stop it from any process."""

    name: str
    pid: int
    start_ticks: int
    log: Path
    argv: list[str]
    popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    @classmethod
    def spawn(cls, name: str, argv: list[str], log: Path, *, detached: bool) -> "ManagedProcess":
        """Start `argv` in its own session with output appended to `log`. Unless `detached`, the
        child is tied to this process's lifetime."""
        with open(log, "ab") as out:
            try:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=None if detached else _die_with_parent(),
                )
            except OSError as exc:
                raise ControlPlaneError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from exc
        stat = _proc_stat(popen.pid)
        return cls(name, popen.pid, stat[1] if stat else -1, log, list(argv), popen)

    def running(self) -> bool:
        if self.popen is not None and self.popen.poll() is not None:
            return False
        stat = _proc_stat(self.pid)
        return stat is not None and stat[1] == self.start_ticks and stat[0] not in ("Z", "X")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to `timeout`, then SIGKILL. Safe to call twice or on a dead process."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if not self.running():
                break
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.05)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self.running():
            raise ControlPlaneError(f"{self.name} (pid {self.pid}) survived SIGKILL")

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "start_ticks": self.start_ticks, "log": str(self.log), "argv": self.argv}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> "ManagedProcess":
        return cls(name, int(data["pid"]), int(data["start_ticks"]), Path(data["log"]), list(data["argv"]))


# ----------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports on 127.0.0.1 that nothing listens on right now. The sockets are held
    open together while picking: one at a time, the kernel may hand the same port out twice."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def generate_service_account_keys(private_key: Path, public_key: Path) -> str:
    """Write an RSA key pair for signing ServiceAccount tokens; return the tool used.

    The `openssl` CLI is preferred (no Python dependency); `cryptography` (present with Ray) is the
    fallback."""
    if shutil.which("openssl"):
        for cmd in (
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(private_key)],
            ["openssl", "pkey", "-in", str(private_key), "-pubout", "-out", str(public_key)],
        ):
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise ControlPlaneError(f"{' '.join(cmd[:2])} failed: {proc.stderr.strip()}")
        private_key.chmod(0o600)
        return "openssl"
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError as exc:
        raise ControlPlaneError("need the openssl command or the Python `cryptography` package to make keys") from exc
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private_key.chmod(0o600)
    public_key.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return "cryptography"


def write_kubeconfig(path: Path, *, server: str, ca_file: Path, user: str, token: str) -> Path:
    """A token kubeconfig that verifies the server against `ca_file` (never insecure-skip-tls-verify)."""
    import yaml

    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster-scheduler", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": "cluster-scheduler", "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    path.chmod(0o600)
    return path


def _get(url: str, *, token: str | None, ctx: ssl.SSLContext | None, timeout: float) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


# ----------------------------------------------------------------------------- the control plane


@dataclass
class ControlPlane:
    """A running etcd + kube-apiserver pair and the credentials to use it.

    `admin_kubeconfig` is system:masters (for tests and load generators); `scheduler_kubeconfig` is the
    `kube-system/cluster-scheduler` ServiceAccount bound by k8s/rbac.yaml, i.e. exactly what the
    scheduler gets in a real cluster; `kube_scheduler_kubeconfig` is the user `system:kube-scheduler`,
    which the apiserver's bootstrap RBAC already grants what the upstream kube-scheduler needs.
    """

    workdir: Path
    url: str
    etcd_url: str
    ca_file: Path
    admin_kubeconfig: Path
    scheduler_kubeconfig: Path
    kube_scheduler_kubeconfig: Path
    admin_token: str = field(repr=False)
    bench: bool
    binaries: Binaries
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    remove_workdir: bool = False

    @property
    def state_file(self) -> Path:
        return self.workdir / STATE_FILE

    @property
    def etcd_data_dir(self) -> Path:
        return self.workdir / "etcd-data"

    def save(self) -> None:
        state = {
            "workdir": str(self.workdir),
            "url": self.url,
            "etcd_url": self.etcd_url,
            "ca_file": str(self.ca_file),
            "admin_kubeconfig": str(self.admin_kubeconfig),
            "scheduler_kubeconfig": str(self.scheduler_kubeconfig),
            "kube_scheduler_kubeconfig": str(self.kube_scheduler_kubeconfig),
            "bench": self.bench,
            "bin_dir": str(self.binaries.bin_dir),
            "processes": {name: p.to_json() for name, p in self.processes.items()},
            "timings": self.timings,
        }
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, workdir: Path | str) -> "ControlPlane":
        """The control plane recorded in `workdir` (its processes may have died since)."""
        workdir = Path(workdir).expanduser().resolve()
        try:
            state = json.loads((workdir / STATE_FILE).read_text())
        except FileNotFoundError:
            raise ControlPlaneError(f"no control plane in {workdir} (no {STATE_FILE})") from None
        except (OSError, ValueError) as exc:
            raise ControlPlaneError(f"cannot read {workdir / STATE_FILE}: {exc}") from exc
        token = ""
        tokens = workdir / "pki" / "tokens.csv"
        if tokens.exists():
            token = tokens.read_text().splitlines()[0].split(",", 1)[0]
        return cls(
            workdir=workdir,
            url=state["url"],
            etcd_url=state["etcd_url"],
            ca_file=Path(state["ca_file"]),
            admin_kubeconfig=Path(state["admin_kubeconfig"]),
            scheduler_kubeconfig=Path(state["scheduler_kubeconfig"]),
            kube_scheduler_kubeconfig=Path(state["kube_scheduler_kubeconfig"]),
            admin_token=token,
            bench=bool(state["bench"]),
            binaries=Binaries(Path(state["bin_dir"])),
            processes={n: ManagedProcess.from_json(n, p) for n, p in state["processes"].items()},
            timings=dict(state.get("timings", {})),
        )

    def running(self) -> dict[str, bool]:
        return {name: p.running() for name, p in self.processes.items()}

    def readyz(self, timeout: float = 5.0) -> tuple[bool, str]:
        """(ready, body) of the apiserver's /readyz, TLS-verified against the serving cert."""
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
            code, body = _get(self.url + "/readyz", token=self.admin_token, ctx=ctx, timeout=timeout)
        except (OSError, ssl.SSLError) as exc:
            return False, str(getattr(exc, "reason", exc))
        return code == 200 and body.strip() == "ok", body.strip()

    def api_client(self, which: str = "admin") -> "ApiClient":
        """`admin`, `scheduler` (the ServiceAccount) or `kube-scheduler`."""
        paths = {
            "admin": self.admin_kubeconfig,
            "scheduler": self.scheduler_kubeconfig,
            "kube-scheduler": self.kube_scheduler_kubeconfig,
        }
        return api_client(paths[which])

    def stop_apiserver(self, timeout: float = 70.0) -> None:
        """Stop kube-apiserver only, as a rolling restart does: SIGTERM, and SIGKILL only if it has
        not exited after `timeout` (its graceful shutdown waits up to a minute for requests in
        flight). etcd and its data stay."""
        self.processes["kube-apiserver"].stop(timeout)

    def start_apiserver(self, timeout: float = 120.0, *, detached: bool = False) -> float:
        """Start kube-apiserver again with the argv it was first started with: the same port,
        serving certificate (kept in its --cert-dir), tokens and etcd. Returns once /readyz
        answers ok, with the monotonic time it did. Not detached, the new process is tied to the
        calling thread, as in `start_control_plane`."""
        old = self.processes["kube-apiserver"]
        if old.running():
            raise ControlPlaneError(f"kube-apiserver (pid {old.pid}) is still running")
        new = ManagedProcess.spawn(old.name, old.argv, old.log, detached=detached)
        self.processes[old.name] = new
        self.save()
        _wait(f"kube-apiserver {self.url}/readyz after a restart", new, lambda: self.readyz(timeout=5), timeout)
        return time.monotonic()

    def start_component(self, name: str, argv: list[str], log: Path, *, detached: bool) -> ManagedProcess:
        """Spawn a component beside the apiserver (the peer scheduler, the controller manager)
        and record it in the state, so `stop` and `status` know it; one of each name at a time."""
        if (old := self.processes.get(name)) is not None and old.running():
            raise ControlPlaneError(f"{name} already running (pid {old.pid}) for {self.workdir}")
        proc = ManagedProcess.spawn(name, argv, log, detached=detached)
        self.processes[name] = proc
        if self.state_file.exists():
            self.save()
        return proc

    def stop_component(self, name: str, proc: ManagedProcess, timeout: float = 10.0) -> None:
        """Stop a component and drop it from the state (if it is still the one recorded)."""
        proc.stop(timeout)
        if self.processes.get(name) is proc:
            del self.processes[name]
            if self.state_file.exists():
                self.save()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every process (newest first), wipe etcd's data, forget the state. Idempotent."""
        errors = []
        for proc in reversed(list(self.processes.values())):
            try:
                proc.stop(timeout)
            except ControlPlaneError as exc:
                errors.append(str(exc))
        if errors:
            raise ControlPlaneError("; ".join(errors))
        self.processes.clear()
        shutil.rmtree(self.etcd_data_dir, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        if self.remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ControlPlane":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait(what: str, proc: ManagedProcess, check, timeout: float) -> None:
    """Poll `check() -> (done, detail)` until done; fail fast if `proc` exits, with its log tail."""
    deadline = time.monotonic() + timeout
    detail = ""
    while time.monotonic() < deadline:
        if not proc.running():
            raise ControlPlaneError(f"{proc.name} exited before {what}; last lines of {proc.log}:\n{proc.log_tail()}")
        done, detail = check()
        if done:
            return
        time.sleep(0.1)
    last = detail.strip().splitlines()
    failing = [line[3:].split(" failed")[0] for line in last if line.startswith("[-]")]
    answer = (
        f"{len(failing)} checks failing: {', '.join(failing[:3])}{', ...' if len(failing) > 3 else ''}"
        if failing
        else (last[-1] if last else "none")
    )
    raise ControlPlaneError(
        f"{what}: not ready after {timeout:.0f}s (last answer: {answer}); "
        f"last lines of {proc.log}:\n{proc.log_tail()}"
    )


def wait_healthz(name: str, proc: ManagedProcess, url: str, timeout: float) -> None:
    """Wait until a component's own /healthz (self-signed, in memory; always served
    unauthenticated) answers ok, or fail with its log."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # only for the component's throwaway self-signed endpoint

    def healthy() -> tuple[bool, str]:
        try:
            code, body = _get(url, token=None, ctx=insecure, timeout=2)
        except OSError as exc:
            return False, str(exc)
        return code == 200 and body.strip() == "ok", body

    _wait(f"{name} {url}", proc, healthy, timeout)


def _etcd_args(bins: Binaries, data_dir: Path, client_port: int, peer_port: int, bench: bool) -> list[str]:
    client = f"http://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    args = [
        str(bins.etcd),
        "--name=cs",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=cs={peer}",
        "--initial-cluster-state=new",
        # Throwaway data for tests and benchmarks alike: an fsync per write would make the disk, not
        # the apiserver or the scheduler, the thing being measured.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]
    if bench:
        # Long benchmarks write hundreds of thousands of revisions: keep the keyspace and db bounded.
        args += ["--auto-compaction-mode=periodic", "--auto-compaction-retention=5m", "--quota-backend-bytes=8589934592"]
    return args


def _apiserver_args(
    bins: Binaries, *, etcd_url: str, port: int, pki: Path, bench: bool, extra: Iterable[str]
) -> list[str]:
    args = [
        str(bins.kube_apiserver),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        # Without it the apiserver advertises the host's default-route address.
        "--advertise-address=127.0.0.1",
        # Nothing on loopback can reach a Service IP, so don't maintain the `kubernetes` Endpoints.
        "--endpoint-reconciler-type=none",
        f"--cert-dir={pki}",
        f"--token-auth-file={pki / 'tokens.csv'}",
        "--authorization-mode=Node,RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        "--allow-privileged=true",
        f"--disable-admission-plugins={','.join(DISABLED_ADMISSION)}",
        f"--feature-gates={','.join(FEATURE_GATES)}",
        f"--runtime-config={','.join(RUNTIME_CONFIG)}",
    ]
    if bench:
        args += BENCH_APISERVER_ARGS
    return args + list(extra)


def _bootstrap_scheduler_identity(admin_kubeconfig: Path, timeout: float) -> str:
    """Apply k8s/rbac.yaml (ServiceAccount, ClusterRole, ClusterRoleBinding) and return a
    TokenRequest token for the ServiceAccount."""
    from kubernetes import client, utils
    from kubernetes.client.rest import ApiException

    rbac = resource_path("k8s/rbac.yaml")
    if not rbac.is_file():
        raise ControlPlaneError(f"{rbac} not found")
    api = api_client(admin_kubeconfig)
    try:
        core = client.CoreV1Api(api)
        # kube-system is created by an apiserver post-start hook that /readyz does not wait for.
        deadline = time.monotonic() + timeout
        while True:
            try:
                core.read_namespace(SCHEDULER_SA_NAMESPACE)
                break
            except ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise ControlPlaneError(f"namespace {SCHEDULER_SA_NAMESPACE} never appeared: {exc.reason}") from exc
                time.sleep(0.1)
        try:
            utils.create_from_yaml(api, str(rbac))
        except utils.FailToCreateError as exc:
            reasons = "; ".join(f"{e.status} {e.reason}" for e in exc.api_exceptions)
            raise ControlPlaneError(f"applying {rbac} failed: {reasons}") from exc
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=SCHEDULER_TOKEN_SECONDS)
        )
        try:
            resp = core.create_namespaced_service_account_token(SCHEDULER_SA_NAME, SCHEDULER_SA_NAMESPACE, request)
        except ApiException as exc:
            raise ControlPlaneError(f"TokenRequest for {SCHEDULER_SA_NAME} failed: {exc.status} {exc.reason}") from exc
        return resp.status.token
    finally:
        api.close()


def start_control_plane(
    workdir: Path | str | None = None,
    *,
    bench: bool = False,
    apiserver_args: Iterable[str] = (),
    detached: bool = False,
    secure_port: int | None = None,
    timeout: float = 120.0,
    binaries: Binaries | None = None,
) -> ControlPlane:
    """Start etcd and kube-apiserver on free loopback ports and set up both kubeconfigs.

    `bench` lifts the apiserver's request throttles and bounds etcd's growth. `apiserver_args` come
    last and so override the defaults. `detached` processes outlive this Python process (the CLI's
    `up`); otherwise they are SIGKILLed when the calling *thread* exits (PR_SET_PDEATHSIG), so call
    this from a long-lived thread. Without `workdir` a temporary directory is used and removed on
    stop. On any failure everything already started is stopped again.
    """
    t0 = time.monotonic()
    bins = binaries or find_binaries()
    t_bins = time.monotonic()
    remove = workdir is None
    wd = Path(workdir or tempfile.mkdtemp(prefix="cs-controlplane-")).expanduser().resolve()
    wd.mkdir(parents=True, exist_ok=True)
    if (wd / STATE_FILE).exists():
        old = ControlPlane.load(wd)
        if any(old.running().values()):
            raise ControlPlaneError(
                f"a control plane is already running in {wd} (stop it: cluster-scheduler controlplane down --workdir {wd})"
            )
    if secure_port is not None and port_in_use(secure_port):
        raise ControlPlaneError(f"port {secure_port} on 127.0.0.1 is already in use")
    ports = [p for p in free_ports(3) if p != secure_port]
    port = secure_port or ports.pop()
    etcd_client, etcd_peer = ports[:2]

    pki = wd / "pki"
    shutil.rmtree(pki, ignore_errors=True)  # a fresh serving cert and fresh keys every start
    pki.mkdir(mode=0o700)
    shutil.rmtree(wd / "etcd-data", ignore_errors=True)
    generate_service_account_keys(pki / "sa.key", pki / "sa.pub")
    admin_token, kube_scheduler_token = secrets.token_hex(24), secrets.token_hex(24)
    tokens = pki / "tokens.csv"
    tokens.write_text(
        f'{admin_token},admin,admin,"system:masters"\n'
        f"{kube_scheduler_token},system:kube-scheduler,system:kube-scheduler\n"
    )
    tokens.chmod(0o600)

    url = f"https://127.0.0.1:{port}"
    cp = ControlPlane(
        workdir=wd,
        url=url,
        etcd_url=f"http://127.0.0.1:{etcd_client}",
        ca_file=pki / "apiserver.crt",  # self-signed by the apiserver: its CA certificate is in the file
        admin_kubeconfig=wd / "admin.kubeconfig",
        scheduler_kubeconfig=wd / "scheduler.kubeconfig",
        kube_scheduler_kubeconfig=wd / "kube-scheduler.kubeconfig",
        admin_token=admin_token,
        bench=bench,
        binaries=bins,
        remove_workdir=remove,
    )
    try:
        etcd = ManagedProcess.spawn(
            "etcd", _etcd_args(bins, cp.etcd_data_dir, etcd_client, etcd_peer, bench), wd / "etcd.log", detached=detached
        )
        cp.processes["etcd"] = etcd
        cp.save()

        def etcd_health() -> tuple[bool, str]:
            try:
                code, body = _get(cp.etcd_url + "/health", token=None, ctx=None, timeout=2)
            except OSError as exc:
                return False, str(exc)
            return code == 200 and '"health":"true"' in body.replace(" ", ""), body

        _wait("etcd /health", etcd, etcd_health, 30)
        t_etcd = time.monotonic()

        apiserver = ManagedProcess.spawn(
            "kube-apiserver",
            _apiserver_args(bins, etcd_url=cp.etcd_url, port=port, pki=pki, bench=bench, extra=apiserver_args),
            wd / "kube-apiserver.log",
            detached=detached,
        )
        cp.processes["kube-apiserver"] = apiserver
        cp.save()

        def ready() -> tuple[bool, str]:
            if not cp.ca_file.exists():
                return False, "no serving certificate yet"
            return cp.readyz(timeout=5)

        _wait(f"kube-apiserver {url}/readyz", apiserver, ready, timeout)
        t_ready = time.monotonic()

        write_kubeconfig(cp.admin_kubeconfig, server=url, ca_file=cp.ca_file, user="admin", token=admin_token)
        write_kubeconfig(
            cp.kube_scheduler_kubeconfig,
            server=url,
            ca_file=cp.ca_file,
            user="system:kube-scheduler",
            token=kube_scheduler_token,
        )
        sa_token = _bootstrap_scheduler_identity(cp.admin_kubeconfig, timeout=30)
        write_kubeconfig(
            cp.scheduler_kubeconfig,
            server=url,
            ca_file=cp.ca_file,
            user=f"system:serviceaccount:{SCHEDULER_SA_NAMESPACE}:{SCHEDULER_SA_NAME}",
            token=sa_token,
        )
        t_done = time.monotonic()
        cp.timings = {
            "binaries_s": round(t_bins - t0, 3),
            "etcd_s": round(t_etcd - t_bins, 3),
            "apiserver_ready_s": round(t_ready - t_etcd, 3),
            "bootstrap_s": round(t_done - t_ready, 3),
            "total_s": round(t_done - t0, 3),
        }
        cp.save()
        return cp
    except BaseException:
        cp.remove_workdir = False  # keep the logs the error message points at
        try:
            cp.stop()
        except ControlPlaneError:
            pass
        raise
