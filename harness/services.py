"""Start real Kafka (KRaft), Mosquitto, Prometheus and Alertmanager processes.

Every service listens on free 127.0.0.1 ports, keeps its config, data and log
under the ``workdir`` it is given, and is registered so that whatever is still
running when the interpreter exits gets killed (``atexit``; children started
from the main thread also get ``PR_SET_PDEATHSIG`` so a SIGKILLed test run
does not leak brokers either).

No pytest import here: benchmarks use this module too. ``tests/conftest.py``
wraps these classes in fixtures and turns :class:`MissingBinary` into a skip
(or a failure when ``CI`` is set).

Typical use::

    broker = KafkaBroker(tmpdir / "kafka").start()
    broker.create_topics("fundflow.etf.trades")
    ... KafkaProducer(bootstrap_servers=broker.bootstrap) ...
    broker.restart()          # same ports, same log.dirs: data survives
    broker.stop()
"""

from __future__ import annotations

import atexit
import base64
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "REPO_ROOT",
    "ServiceError",
    "MissingBinary",
    "free_port",
    "wait_until",
    "port_open",
    "mqtt_connack",
    "find_binary",
    "promtool_path",
    "amtool_path",
    "kafka_libs",
    "Service",
    "KafkaBroker",
    "KafkaCluster",
    "KafkaClusterNode",
    "TestPki",
    "make_test_pki",
    "Mosquitto",
    "Prometheus",
    "Alertmanager",
    "stop_all",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
FETCH_KAFKA = REPO_ROOT / "deploy" / "dev" / "fetch-kafka.sh"
DEFAULT_KAFKA_VERSION = "4.1.1"
LOOPBACK = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service failed to start, exited early or did not answer in time."""


class MissingBinary(ServiceError, FileNotFoundError):
    """A binary or jar the service needs is not installed on this machine."""


class _PortTaken(ServiceError):
    """The process exited because its port was taken (retried with new ports)."""


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

_ports_lock = threading.Lock()
_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1, never the same twice per process."""
    with _ports_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((LOOPBACK, 0))
                port = s.getsockname()[1]
            if port not in _ports_handed_out:
                _ports_handed_out.add(port)
                return port
    raise ServiceError("could not find a free port")


def wait_until(
    fn: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "condition",
    interval: float = 0.1,
) -> Any:
    """Call ``fn`` until it returns something truthy; return that value.

    Exceptions raised by ``fn`` count as "not yet" (the last one is reported
    on timeout). Raises :class:`TimeoutError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - retried, reported on timeout
            last_exc = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def mqtt_connack(port: int, host: str = LOOPBACK, timeout: float = 1.0) -> int | None:
    """Send a bare MQTT 3.1.1 CONNECT; return the CONNACK return code, None if no broker answers."""
    client_id = b"harness-probe"
    var_header = b"\x00\x04MQTT\x04\x02\x00\x05"  # protocol, level 4, clean session, keepalive 5
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = var_header + payload
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(packet)
            data = b""
            while len(data) < 4:
                chunk = sock.recv(4 - len(data))
                if not chunk:
                    return None
                data += chunk
            with contextlib.suppress(OSError):
                sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError:
        return None
    if data[0] != 0x20 or data[1] != 0x02:
        return None
    return data[3]


_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")


def find_binary(name: str) -> str | None:
    """Path of an executable, looking in PATH and the sbin dirs (mosquitto lives in /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    for d in _EXTRA_BIN_DIRS:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None


def _require(name: str, hint: str) -> str:
    path = find_binary(name)
    if path is None:
        raise MissingBinary(f"{name} not found ({hint}; run: bash deploy/dev/install-deps.sh)")
    return path


def promtool_path() -> str | None:
    """``promtool`` (Debian: /usr/bin/promtool from the prometheus package), or None."""
    return find_binary("promtool")


def amtool_path() -> str | None:
    """``amtool`` (Debian: /usr/bin/amtool from prometheus-alertmanager), or None."""
    return find_binary("amtool")


def _cache_dir() -> Path:
    return Path(os.environ.get("FUNDFLOW_CACHE") or Path.home() / ".cache" / "fundflow")


def kafka_libs(version: str | None = None, fetch: bool = True) -> Path:
    """The dir holding the kafka_2.13 jars (+ deps); runs fetch-kafka.sh when missing.

    Raises :class:`MissingBinary` when the jars are absent and cannot be fetched.
    """
    version = version or os.environ.get("KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
    libs = _cache_dir() / f"kafka-{version}" / "libs"
    stamp = libs.parent / ".complete"
    if stamp.exists() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    if not fetch:
        raise MissingBinary(f"Kafka jars not found in {libs} (run: bash {FETCH_KAFKA})")
    if find_binary("mvn") is None:
        raise MissingBinary(f"Kafka jars not found in {libs} and mvn is not installed")
    env = dict(os.environ, KAFKA_VERSION=version)
    proc = subprocess.run(
        ["bash", str(FETCH_KAFKA)], env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
        raise MissingBinary(
            f"fetch-kafka.sh failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return libs


def _http(
    url: str,
    method: str = "GET",
    data: bytes | None = None,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read()


def _http_ok(url: str) -> bool:
    try:
        _http(url, timeout=1.0)
        return True
    except (OSError, urllib.error.URLError):
        return False


def _dump_yaml(obj: Any) -> str:
    try:
        import yaml  # pyyaml is a project dependency
    except ImportError:  # JSON is valid YAML
        return json.dumps(obj, indent=2)
    return yaml.safe_dump(obj, sort_keys=False)


# --------------------------------------------------------------------------
# process registry (atexit cleanup)
# --------------------------------------------------------------------------

_registry_lock = threading.Lock()
_registry: dict[int, Service] = {}


def _register(service: Service) -> None:
    with _registry_lock:
        _registry[id(service)] = service


def _unregister(service: Service) -> None:
    with _registry_lock:
        _registry.pop(id(service), None)


def stop_all() -> None:
    """Kill every service started by this process that is still running."""
    with _registry_lock:
        services = list(_registry.values())
    for service in services:
        with contextlib.suppress(Exception):
            service.kill()


atexit.register(stop_all)


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """preexec_fn that makes the child die with its parent (Linux only).

    Only used from the main thread: PDEATHSIG fires when the *thread* that
    forked exits, which would kill services started from short-lived threads.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None

    prctl = libc.prctl  # resolved before fork
    sigkill = int(signal.SIGKILL)

    def preexec() -> None:
        prctl(1, sigkill)  # PR_SET_PDEATHSIG

    return preexec


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------


class Service:
    """A child process with a workdir, a log file, start/stop/kill/restart.

    Subclasses implement :meth:`command` and :meth:`is_ready`, and may
    override :meth:`prepare` (write configs; called on every start).
    """

    name = "service"
    start_timeout = 60.0
    stop_timeout = 30.0

    def __init__(self, workdir: str | os.PathLike[str]):
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None  # how long the last start() took

    # -- to implement -----------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def is_ready(self) -> bool:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files etc. Called before each launch."""

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    # -- lifecycle --------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float | None = None) -> Service:
        """Launch the process and wait until it is ready. Returns self.

        On the very first start, a port taken between :func:`free_port` and
        the bind ("address already in use") gets fresh ports and a retry.
        """
        if self.running:
            return self
        t0 = time.monotonic()
        for attempt in range(4):
            try:
                self._launch_and_wait(timeout)
                break
            except _PortTaken:
                if attempt == 3 or self._started_once or not self._auto_ports:
                    raise
                self.reassign_ports()
        self._started_once = True
        self.start_seconds = time.monotonic() - t0
        return self

    # set by subclasses whose ports came from free_port()
    _auto_ports = False
    _started_once = False
    # log lines meaning "start-up failed, the process is on its way out"
    fatal_log_markers: tuple[str, ...] = ()

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def reassign_ports(self) -> None:
        """Pick new free ports (only before the first successful start)."""
        raise NotImplementedError

    def _launch_and_wait(self, timeout: float | None) -> None:
        self._wait_ready(self._launch(), timeout)

    def _launch(self) -> int:
        """Prepare and spawn the process without waiting; returns the log offset of this run."""
        self.prepare()
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%F %T')} start: {' '.join(cmd)}\n".encode())
            log.flush()
            log_offset = log.tell()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )
        _register(self)
        return log_offset

    def _wait_ready(self, log_offset: int, timeout: float | None) -> None:
        assert self.proc is not None
        timeout = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last_exc: BaseException | None = None
        while True:
            code = self.proc.poll()
            fatal = False
            if code is None and self.fatal_log_markers:
                this_run = self._log_since(log_offset)
                fatal = any(m in this_run for m in self.fatal_log_markers)
                if fatal:  # e.g. Kafka can take 30 s to exit after a fatal start-up error
                    code = self.kill()
            if code is not None:
                _unregister(self)
                this_run = self._log_since(log_offset)
                cls = _PortTaken if "already in use" in this_run.lower() else ServiceError
                raise cls(
                    f"{self.name} exited with code {code} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if self.is_ready():
                    return
            except Exception as exc:  # noqa: BLE001 - not ready yet
                last_exc = exc
            if time.monotonic() >= deadline:
                self.kill()
                detail = f" (last error: {last_exc!r})" if last_exc else ""
                raise ServiceError(
                    f"{self.name} not ready after {timeout:g}s{detail}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float | None = None) -> int | None:
        """Send ``sig`` and wait for the process to exit (SIGKILL after ``timeout``).

        Returns the exit code (None when it was not running).
        """
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _unregister(self)
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL, no clean shutdown (a crash)."""
        return self.stop(signal.SIGKILL, timeout=10)

    def restart(self, timeout: float | None = None) -> Service:
        """Stop cleanly and start again on the same ports with the same data."""
        self.stop()
        return self.start(timeout)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Service:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {state} workdir={self.workdir}>"


# --------------------------------------------------------------------------
# Kafka (KRaft, single node, jars from Maven Central)
# --------------------------------------------------------------------------


class KafkaBroker(Service):
    """A single-node KRaft Kafka broker+controller from the cached jars.

    ``bootstrap`` is ``"127.0.0.1:PORT"``. The storage is formatted once (on
    the first start); :meth:`restart`, :meth:`stop` + :meth:`start` and
    :meth:`kill` + :meth:`start` keep the ports and ``log.dirs``.
    """

    name = "kafka"
    start_timeout = 120.0
    stop_timeout = 60.0
    fatal_log_markers = ("Exiting Kafka due to fatal exception",)

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        version: str | None = None,
        heap: str = "512m",
        num_partitions: int = 6,
        extra_config: Mapping[str, Any] | None = None,
        port: int | None = None,
        controller_port: int | None = None,
    ):
        super().__init__(workdir)
        self.version = version or os.environ.get("KAFKA_VERSION") or DEFAULT_KAFKA_VERSION
        self.heap = heap
        self.num_partitions = num_partitions
        self.extra_config = dict(extra_config or {})
        self._auto_ports = port is None and controller_port is None
        self.port = port or free_port()
        self.controller_port = controller_port or free_port()
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "server.properties"
        self.cluster_id = _kafka_uuid()
        self.format_seconds: float | None = None
        self._libs: Path | None = None
        self._java: str | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def reassign_ports(self) -> None:
        # the storage was formatted with the controller endpoint: format again
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.port = free_port()
        self.controller_port = free_port()

    @property
    def libs(self) -> Path:
        if self._libs is None:
            self._libs = kafka_libs(self.version)
        return self._libs

    @property
    def log4j_config(self) -> Path:
        return self.libs.parent / "log4j2.properties"

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": self.num_partitions,
            "default.replication.factor": 1,
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 6,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            # after a SIGKILL the restarted broker must wait out the old
            # registration's session (DUPLICATE_BROKER_REGISTRATION); default 9 s
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 1000,
            "num.network.threads": 2,
            "num.io.threads": 4,
            "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
        }
        props.update(self.extra_config)
        return props

    format_heap = "256m"

    def format_args(self) -> list[str]:
        """StorageTool's arguments besides the config: a single node is its own quorum."""
        return ["--standalone", f"--cluster-id={self.cluster_id}"]

    def secrets(self) -> list[str]:
        """Strings masked in a failed format's output."""
        return []

    def prepare(self) -> None:
        self._java = _require("java", "Java 17 is needed for Kafka")
        self.libs  # noqa: B018 - resolves (and fetches) the jars or raises MissingBinary
        self.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        if (self.data_dir / "meta.properties").exists():
            return
        t0 = time.monotonic()
        proc = subprocess.run(
            [*self._java_cmd(heap=self.format_heap), "kafka.tools.StorageTool", "format", "-c",
             str(self.config_path), *self.format_args()],
            cwd=self.workdir, capture_output=True, text=True, timeout=120,
        )
        if proc.returncode != 0:
            out = proc.stdout + proc.stderr
            for secret in self.secrets():
                out = out.replace(secret, "***")
            raise ServiceError(f"kafka StorageTool format failed (exit {proc.returncode}):\n{out[-4000:]}")
        self.format_seconds = time.monotonic() - t0

    def _java_cmd(self, heap: str) -> list[str]:
        assert self._java
        return [
            self._java,
            f"-Xmx{heap}",
            f"-Xms{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            "-cp",
            f"{self.libs}/*",
        ]

    def command(self) -> list[str]:
        return [*self._java_cmd(self.heap), "kafka.Kafka", str(self.config_path)]

    def is_ready(self) -> bool:
        if not port_open(self.port):
            return False
        from kafka.admin import KafkaAdminClient

        quick = {"request_timeout_ms": 3000}
        if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:  # kafka-python >= 2.1
            quick["bootstrap_timeout_ms"] = 3000
        admin = self.admin(**quick)
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True

    # -- client conveniences (kafka-python, imported lazily) ---------------
    def admin(self, **kwargs: Any):
        """A kafka-python ``KafkaAdminClient`` for this broker (caller closes it)."""
        from kafka.admin import KafkaAdminClient

        kwargs.setdefault("request_timeout_ms", 10000)
        return KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="harness", **kwargs)

    def create_topics(
        self,
        *names: str,
        partitions: int | None = None,
        config: Mapping[str, str] | None = None,
        exist_ok: bool = True,
    ) -> None:
        """Create topics (default: ``num_partitions`` partitions, RF 1) and wait for leaders."""
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        partitions = partitions or self.num_partitions
        admin = self.admin()
        try:
            for name in names:
                try:
                    admin.create_topics(
                        [NewTopic(name, partitions, 1, topic_configs=dict(config or {}))]
                    )
                except TopicAlreadyExistsError:
                    if not exist_ok:
                        raise
        finally:
            admin.close()
        self.wait_for_topics(*names)

    def wait_for_topics(self, *names: str, timeout: float = 30.0) -> None:
        """Wait until every partition of the topics has a leader."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, client_id="harness")
        try:
            def ready() -> bool:
                for name in names:
                    parts = consumer.partitions_for_topic(name)
                    if not parts:
                        # kafka-python has no public call to refresh metadata now
                        consumer._client.cluster.request_update()  # noqa: SLF001 - see above
                        consumer._client.poll(timeout_ms=200)  # noqa: SLF001 - see above
                        return False
                return True

            wait_until(ready, timeout, f"topics {names} on {self.bootstrap}")
        finally:
            consumer.close()


def _kafka_uuid() -> str:
    """A random Kafka cluster id (URL-safe base64 of 16 bytes, no padding)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# --------------------------------------------------------------------------
# Kafka cluster: three KRaft nodes, SASL_SSL (SCRAM-SHA-512), ACLs
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TestPki:
    """A throwaway CA and one node certificate (key + chain in one PEM), made at test time."""

    ca_file: Path
    node_pem: Path
    node_cn: str

    @property
    def node_principal(self) -> str:
        return f"User:CN={self.node_cn}"


def make_test_pki(directory: str | os.PathLike[str], node_cn: str = "fundflow-test-broker") -> TestPki:
    """CA + one certificate every node presents as server and as client (SAN 127.0.0.1, localhost).

    Python ``cryptography`` (no keytool, no JKS): Kafka reads PEM key and trust
    stores. The key is unencrypted and mode 0600 in the test's temp dir; it
    never outlives the run.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fundflow-test-ca")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_cn)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_file, node_pem = d / "ca.pem", d / "node.pem"
    ca_file.write_bytes(ca.public_bytes(pem))
    node_pem.touch(mode=0o600)
    node_pem.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem) + ca.public_bytes(pem))
    return TestPki(ca_file, node_pem, node_cn)


class KafkaClusterNode(KafkaBroker):
    """One combined controller+broker of a :class:`KafkaCluster`.

    Listeners: ``CLIENT`` (SASL_SSL, SCRAM-SHA-512) for applications,
    ``INTERNAL`` (replication) and ``CONTROLLER`` (quorum), both TLS with
    client certificates, so only holders of the node certificate get in there.
    """

    fatal_log_markers = ("Exiting Kafka due to fatal exception", "Exiting Kafka.")

    def __init__(self, cluster: KafkaCluster, node_id: int, workdir: Path) -> None:
        super().__init__(workdir, heap=cluster.heap, num_partitions=cluster.num_partitions,
                         extra_config=cluster.extra_config)
        self.cluster = cluster
        self.node_id = node_id
        self.internal_port = free_port()
        self._auto_ports = False  # the quorum's voter list names every node's ports

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def properties(self) -> dict[str, Any]:
        c, pki = self.cluster, self.cluster.pki
        props: dict[str, Any] = {
            "process.roles": "broker,controller",
            "node.id": self.node_id,
            "controller.quorum.voters": c.voters,
            "listeners": f"CLIENT://{LOOPBACK}:{self.port},INTERNAL://{LOOPBACK}:{self.internal_port},"
                         f"CONTROLLER://{LOOPBACK}:{self.controller_port}",
            "advertised.listeners": f"CLIENT://{LOOPBACK}:{self.port},INTERNAL://{LOOPBACK}:{self.internal_port}",
            "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.client.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.client.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki.node_pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki.ca_file),
            "listener.name.internal.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"{pki.node_principal};User:{c.admin_user}",
            "log.dirs": str(self.data_dir),
            "num.partitions": self.num_partitions,
            "default.replication.factor": 3,
            "min.insync.replicas": 2,
            "unclean.leader.election.enable": "false",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": 3,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": 3,
            "transaction.state.log.min.isr": 2,
            "transaction.state.log.num.partitions": 3,
            "share.coordinator.state.topic.replication.factor": 3,
            "share.coordinator.state.topic.min.isr": 2,
            "group.initial.rebalance.delay.ms": 0,
            # fast failure detection: a dead node's partitions move within seconds, and a
            # follower that stops fetching leaves the ISR after 5 s instead of 30 s
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 1000,
            "replica.lag.time.max.ms": 5000,
            "controller.quorum.election.timeout.ms": 1000,
            "controller.quorum.fetch.timeout.ms": 2000,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "num.replica.fetchers": 1,
            "background.threads": 2,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 4 * 1024 * 1024,
        }
        props.update(self.extra_config)
        return props

    format_heap = "128m"

    def format_args(self) -> list[str]:
        """The cluster's id and its SCRAM users, written into every node's metadata at format time."""
        scram = [arg for user, password in self.cluster.users.items()
                 for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")]
        return [f"--cluster-id={self.cluster.cluster_id}", *scram]

    def secrets(self) -> list[str]:
        return list(self.cluster.users.values())

    def _java_cmd(self, heap: str) -> list[str]:
        # a small initial heap, serial GC and the C1 compiler only: three JVMs share two cores
        # with the tests, and start-up is mostly JIT work
        assert self._java
        return [self._java, f"-Xmx{heap}", "-Xms64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.log4j_config}", "-cp", f"{self.libs}/*"]

    def is_ready(self) -> bool:
        """This node answers an authenticated metadata request on its SASL_SSL listener."""
        if not port_open(self.port):
            return False
        admin = self.cluster.admin(bootstrap=self.bootstrap, request_timeout_ms=3000)
        try:
            admin.list_topics()
        finally:
            admin.close()
        return True

    def rss_mb(self) -> float:
        return _rss_mb(self.pid)


def _rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class KafkaCluster:
    """Three (``size``) KRaft nodes on loopback, SASL_SSL with SCRAM-SHA-512 users and ACLs.

    ``users`` maps user name to password (generated by the caller, never
    written anywhere but the node's format command and the clients' env);
    an ``admin`` super user with a random password is added. ACLs deny
    everything not granted (:meth:`allow`). Nodes are :attr:`nodes` (1-based
    ids); kill, stop and start them one by one, the data stays in their dirs.
    """

    admin_user = "admin"

    def __init__(self, workdir: str | os.PathLike[str], *, users: Mapping[str, str] = (), size: int = 3,
                 heap: str = "320m", num_partitions: int = 6, extra_config: Mapping[str, Any] | None = None) -> None:
        import secrets

        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.users = {self.admin_user: secrets.token_hex(16), **dict(users)}
        self.heap, self.num_partitions = heap, num_partitions
        self.extra_config = dict(extra_config or {})
        self.cluster_id = _kafka_uuid()
        self.pki = make_test_pki(self.workdir / "pki")
        self.nodes = [KafkaClusterNode(self, i, self.workdir / f"node{i}") for i in range(1, size + 1)]
        self.start_seconds: float | None = None

    @property
    def voters(self) -> str:
        return ",".join(f"{n.node_id}@{LOOPBACK}:{n.controller_port}" for n in self.nodes)

    @property
    def bootstrap(self) -> str:
        return ",".join(n.bootstrap for n in self.nodes)

    def node(self, node_id: int) -> KafkaClusterNode:
        return self.nodes[node_id - 1]

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> KafkaCluster:
        """Launch every stopped node at once (the quorum needs a majority), wait for all of them."""
        t0 = time.monotonic()
        stopped = [n for n in self.nodes if not n.running]
        with concurrent.futures.ThreadPoolExecutor(len(stopped) or 1) as pool:  # storage format: ~2 s of JVM each
            list(pool.map(lambda n: n.prepare(), stopped))
        launched = [(n, n._launch()) for n in stopped]  # noqa: SLF001 - the cluster starts its own nodes
        try:
            for node, offset in launched:
                node._wait_ready(offset, max(10.0, timeout - (time.monotonic() - t0)))  # noqa: SLF001 - the cluster starts its own nodes
                node._started_once = True  # noqa: SLF001 - the cluster starts its own nodes
            self.wait_brokers(len(self.nodes), timeout=max(10.0, timeout - (time.monotonic() - t0)))
        except BaseException:
            self.kill()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to every node at once, SIGKILL after ``timeout`` (the last node cannot hand over)."""
        running = [n for n in self.nodes if n.running]
        for n in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(n.pid, signal.SIGTERM)  # type: ignore[arg-type]  # started nodes have a pid
        deadline = time.monotonic() + timeout
        for n in running:
            n.stop(timeout=max(0.1, deadline - time.monotonic()))

    def kill(self) -> None:
        for n in self.nodes:
            n.kill()

    def rss_mb(self) -> float:
        return sum(n.rss_mb() for n in self.nodes)

    # -- clients -----------------------------------------------------------------------
    def client_config(self, user: str | None = None, password: str | None = None) -> dict[str, Any]:
        """kafka-python keyword arguments for ``user`` over SASL_SSL (admin when None)."""
        user = user or self.admin_user
        return {"bootstrap_servers": self.bootstrap.split(","), "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": user,
                "sasl_plain_password": self.users[user] if password is None else password,
                "ssl_cafile": str(self.pki.ca_file)}

    def fundflow_env(self, user: str) -> dict[str, str]:
        """``FUNDFLOW_KAFKA__*`` variables connecting a fundflow process as ``user`` (password in env only)."""
        return {"FUNDFLOW_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap, "FUNDFLOW_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                "FUNDFLOW_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512", "FUNDFLOW_KAFKA__SASL_USERNAME": user,
                "FUNDFLOW_KAFKA__SASL_PASSWORD": self.users[user],
                "FUNDFLOW_KAFKA__SSL_CAFILE": str(self.pki.ca_file)}

    def admin(self, bootstrap: str | None = None, **kwargs: Any):
        """A kafka-python ``KafkaAdminClient`` as the admin super user (caller closes it)."""
        from kafka.admin import KafkaAdminClient

        cfg = self.client_config()
        if bootstrap:
            cfg["bootstrap_servers"] = bootstrap.split(",")
        kwargs.setdefault("request_timeout_ms", 10000)
        if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:
            kwargs.setdefault("bootstrap_timeout_ms", kwargs["request_timeout_ms"])
        return KafkaAdminClient(client_id="harness", reconnect_backoff_max_ms=1000, **cfg, **kwargs)

    def allow(self, user: str, operations: Iterable[str], resource_type: str, names: Iterable[str],
              prefixed: bool = False) -> None:
        """Grant ``user`` each operation (``"READ"``, ``"WRITE"``, ...) on resources of one type."""
        from kafka.admin import (
            ACL,
            ACLOperation,
            ACLPermissionType,
            ACLResourcePatternType,
            ResourcePattern,
            ResourceType,
        )

        pattern = ACLResourcePatternType.PREFIXED if prefixed else ACLResourcePatternType.LITERAL
        acls = [ACL(f"User:{user}", "*", ACLOperation[op], ACLPermissionType.ALLOW,
                    ResourcePattern(ResourceType[resource_type], name, pattern))
                for op in operations for name in names]
        admin = self.admin()
        try:
            result = admin.create_acls(acls)
        finally:
            admin.close()
        if result.get("failed"):
            raise ServiceError(f"ACLs not created: {result['failed']}")

    def describe(self, topics: Iterable[str]) -> dict[str, dict[int, tuple[int, list[int], list[int]]]]:
        """topic -> partition -> (leader, replicas, ISR), as the controller sees it now."""
        admin = self.admin()
        try:
            out: dict[str, dict[int, tuple[int, list[int], list[int]]]] = {}
            for t in admin.describe_topics(list(topics)):
                out[t["name"]] = {p["partition_index"]: (p["leader_id"], list(p["replica_nodes"]),
                                                         list(p["isr_nodes"])) for p in t["partitions"]}
            return out
        finally:
            admin.close()

    def wait_brokers(self, n: int, timeout: float = 60.0) -> None:
        """Until the cluster's metadata lists ``n`` live brokers."""
        def enough() -> bool:
            admin = self.admin(request_timeout_ms=3000)
            try:
                return len(admin.describe_cluster()["brokers"]) >= n
            finally:
                admin.close()

        wait_until(enough, timeout, f"{n} brokers registered", interval=0.5)

    def wait_in_sync(self, topics: Iterable[str], timeout: float = 90.0) -> None:
        """Until every partition of ``topics`` has every replica in its ISR."""
        topics = list(topics)

        def synced() -> bool:
            return all(len(isr) == len(replicas) and leader >= 0
                       for parts in self.describe(topics).values() for leader, replicas, isr in parts.values())

        wait_until(synced, timeout, f"all replicas of {topics} in sync", interval=0.5)


# --------------------------------------------------------------------------
# Mosquitto
# --------------------------------------------------------------------------


class Mosquitto(Service):
    """Mosquitto on 127.0.0.1 with persistence in the workdir.

    Persistent sessions (clean_session=False / QoS 1) survive :meth:`restart`.
    With ``username``/``password`` anonymous access is refused.
    """

    name = "mosquitto"
    start_timeout = 30.0

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        *,
        username: str | None = None,
        password: str | None = None,
        allow_anonymous: bool | None = None,
        port: int | None = None,
        extra_config: Iterable[str] = (),
    ):
        super().__init__(workdir)
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.username = username
        self.password = password
        self.allow_anonymous = (username is None) if allow_anonymous is None else allow_anonymous
        self._auto_ports = port is None
        self.port = port or free_port()
        self.extra_config = list(extra_config)
        self.config_path = self.workdir / "mosquitto.conf"
        self.password_file = self.workdir / "passwd"
        self.data_dir = self.workdir / "data"

    @property
    def host(self) -> str:
        return LOOPBACK

    def reassign_ports(self) -> None:
        self.port = free_port()

    @property
    def url(self) -> str:
        auth = f"{self.username}:{self.password}@" if self.username else ""
        return f"mqtt://{auth}{LOOPBACK}:{self.port}"

    def prepare(self) -> None:
        self._binary = _require("mosquitto", "apt-get install mosquitto")
        self.data_dir.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} {LOOPBACK}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.data_dir}/",
            "autosave_interval 1",
            "max_queued_messages 1000000",
            "max_queued_bytes 0",
            "max_inflight_messages 1000",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
        ]
        if self.username is not None:
            if not self.password_file.exists():
                passwd = _require("mosquitto_passwd", "apt-get install mosquitto")
                self.password_file.touch(mode=0o600)
                subprocess.run(
                    [passwd, "-b", str(self.password_file), self.username, str(self.password)],
                    check=True, capture_output=True, timeout=30,
                )
                os.chmod(self.password_file, 0o600)
            lines.append(f"password_file {self.password_file}")
        lines.extend(self.extra_config)
        self.config_path.write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return [self._binary, "-c", str(self.config_path)]

    def is_ready(self) -> bool:
        """An MQTT CONNECT gets a CONNACK (any return code: auth may refuse us)."""
        return mqtt_connack(self.port) is not None


# --------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------


def _parse_target(target: str) -> tuple[str, str, str]:
    """'host:port' or 'http://host:port/path' -> (scheme, host:port, metrics_path)."""
    if "://" not in target:
        return "http", target, "/metrics"
    u = urllib.parse.urlsplit(target)
    return u.scheme or "http", u.netloc, u.path or "/metrics"


class Prometheus(Service):
    """Prometheus scraping ``scrape_targets`` every ``scrape_interval``.

    ``scrape_targets``: ``"host:port"`` or ``"http://host:port/path"`` strings
    (one job ``fundflow``), or a mapping ``{job_name: [targets...]}``.
    ``bearer_token`` is sent on every scrape. ``rule_files`` are copied as
    given (absolute paths recommended). Lifecycle API is on, so :meth:`reload`
    re-reads config and rules (call :meth:`configure` first to change them).
    """

    name = "prometheus"
    start_timeout = 60.0

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        scrape_targets: str | Sequence[str] | Mapping[str, Sequence[str]] = (),
        rule_files: Sequence[str | os.PathLike[str]] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        alertmanager_url: str | None = None,
        bearer_token: str | None = None,
        *,
        port: int | None = None,
        extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
    ):
        super().__init__(workdir)
        self._auto_ports = port is None
        self.port = port or free_port()
        self.config_path = self.workdir / "prometheus.yml"
        self.data_dir = self.workdir / "data"
        self.configure(
            scrape_targets=scrape_targets,
            rule_files=rule_files,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
            alertmanager_url=alertmanager_url,
            bearer_token=bearer_token,
            extra_scrape_configs=extra_scrape_configs,
        )

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def reassign_ports(self) -> None:
        self.port = free_port()

    def configure(self, **changes: Any) -> None:
        """Change config settings (same names as ``__init__``); takes effect on reload/start."""
        for key, value in changes.items():
            if key == "scrape_targets":
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, Mapping):
                    value = {"fundflow": list(value)}
                value = {job: [t] if isinstance(t, str) else list(t) for job, t in value.items()}
            elif key in ("rule_files", "extra_scrape_configs"):
                value = list(value)
            elif key not in (
                "scrape_interval", "evaluation_interval", "alertmanager_url", "bearer_token"
            ):
                raise TypeError(f"unknown Prometheus setting {key!r}")
            setattr(self, key, value)

    def config(self) -> dict[str, Any]:
        scrape_configs: list[dict[str, Any]] = []
        for job, targets in self.scrape_targets.items():
            groups: dict[tuple[str, str], list[str]] = {}
            for t in targets:
                scheme, hostport, path = _parse_target(t)
                groups.setdefault((scheme, path), []).append(hostport)
            for i, ((scheme, path), hostports) in enumerate(sorted(groups.items())):
                sc: dict[str, Any] = {
                    "job_name": job if i == 0 else f"{job}-{i}",
                    "scheme": scheme,
                    "metrics_path": path,
                    "scrape_interval": self.scrape_interval,
                    "scrape_timeout": self.scrape_interval,
                    "static_configs": [{"targets": hostports}],
                }
                if self.bearer_token:
                    sc["authorization"] = {"type": "Bearer", "credentials": self.bearer_token}
                scrape_configs.append(sc)
        scrape_configs.extend(dict(c) for c in self.extra_scrape_configs)
        cfg: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(Path(p).resolve()) for p in self.rule_files],
            "scrape_configs": scrape_configs,
        }
        if self.alertmanager_url:
            u = urllib.parse.urlsplit(self.alertmanager_url)
            am: dict[str, Any] = {
                "scheme": u.scheme or "http",
                "static_configs": [{"targets": [u.netloc]}],
                "api_version": "v2",
            }
            if u.path and u.path != "/":
                am["path_prefix"] = u.path
            cfg["alerting"] = {"alertmanagers": [am]}
        return cfg

    def prepare(self) -> None:
        self._binary = _require("prometheus", "apt-get install prometheus")
        self.data_dir.mkdir(exist_ok=True)
        self.config_path.write_text(_dump_yaml(self.config()))

    def command(self) -> list[str]:
        return [
            self._binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]

    def is_ready(self) -> bool:
        return _http_ok(f"{self.url}/-/ready")

    # -- HTTP API ----------------------------------------------------------
    def api(self, path: str, **params: Any) -> Any:
        """GET ``/api/v1/<path>`` and return ``data`` (raises on status != success)."""
        qs = urllib.parse.urlencode(params)
        raw = _http(f"{self.url}/api/v1/{path}" + (f"?{qs}" if qs else ""), timeout=10)
        body = json.loads(raw)
        if body.get("status") != "success":
            raise ServiceError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns ``data.result`` (for vectors: [{metric, value}, ...])."""
        params: dict[str, Any] = {"query": expr}
        if time is not None:
            params["time"] = time
        try:
            return self.api("query", **params)["result"]
        except urllib.error.HTTPError as exc:  # 400 on a bad expression: show why
            raise ServiceError(f"query {expr!r}: {exc.read().decode(errors='replace')}") from exc

    def query_value(self, expr: str) -> float | None:
        """First sample's value as a float, or None when the result is empty."""
        result = self.query(expr)
        if not result:
            return None
        return float(result[0]["value"][1])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[dict[str, Any]]], Any] | None = None,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """Poll ``query(expr)`` until ``predicate(result)`` is truthy (default: non-empty)."""
        pred = predicate or bool
        holder: dict[str, Any] = {}

        def check() -> bool:
            holder["result"] = self.query(expr)
            return bool(pred(holder["result"]))

        try:
            wait_until(check, timeout, f"prometheus query {expr!r}", interval=0.25)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; last result: {holder.get('result')!r}") from None
        return holder["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """``/api/v1/alerts``: active (pending and firing) alerts."""
        return self.api("alerts")["alerts"]

    def rules(self) -> list[dict[str, Any]]:
        """``/api/v1/rules``: rule groups as loaded."""
        return self.api("rules")["groups"]

    def targets(self) -> list[dict[str, Any]]:
        """``/api/v1/targets``: active targets with health and lastError."""
        return self.api("targets")["activeTargets"]

    def reload(self) -> None:
        """Rewrite the config from current settings and POST /-/reload (raises if invalid)."""
        self.config_path.write_text(_dump_yaml(self.config()))
        try:
            _http(f"{self.url}/-/reload", method="POST", data=b"", timeout=30)
        except urllib.error.HTTPError as exc:
            raise ServiceError(f"prometheus reload failed: {exc.read().decode(errors='replace')}") from exc


# --------------------------------------------------------------------------
# Alertmanager
# --------------------------------------------------------------------------


class Alertmanager(Service):
    """Alertmanager routing every alert to one webhook receiver (no clustering).

    ``webhook_url=None`` gives a receiver with no integrations (alerts are
    only visible through the API).
    """

    name = "alertmanager"
    start_timeout = 60.0

    def __init__(
        self,
        workdir: str | os.PathLike[str],
        webhook_url: str | None = None,
        *,
        group_by: Sequence[str] = ("alertname",),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        send_resolved: bool = True,
        port: int | None = None,
    ):
        super().__init__(workdir)
        self.webhook_url = webhook_url
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.send_resolved = send_resolved
        self._auto_ports = port is None
        self.port = port or free_port()
        self.config_path = self.workdir / "alertmanager.yml"
        self.data_dir = self.workdir / "data"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def reassign_ports(self) -> None:
        self.port = free_port()

    def config(self) -> dict[str, Any]:
        receiver: dict[str, Any] = {"name": "webhook"}
        if self.webhook_url:
            receiver["webhook_configs"] = [
                {"url": self.webhook_url, "send_resolved": self.send_resolved}
            ]
        return {
            "route": {
                "receiver": "webhook",
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [receiver],
        }

    def prepare(self) -> None:
        self._binary = find_binary("prometheus-alertmanager") or _require(
            "alertmanager", "apt-get install prometheus-alertmanager"
        )
        self.data_dir.mkdir(exist_ok=True)
        self.config_path.write_text(_dump_yaml(self.config()))

    def command(self) -> list[str]:
        return [
            self._binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    def is_ready(self) -> bool:
        return _http_ok(f"{self.url}/-/ready")

    def alerts(self) -> list[dict[str, Any]]:
        """``/api/v2/alerts``: alerts Alertmanager currently holds."""
        return json.loads(_http(f"{self.url}/api/v2/alerts", timeout=10))

    def reload(self) -> None:
        self.config_path.write_text(_dump_yaml(self.config()))
        _http(f"{self.url}/-/reload", method="POST", data=b"", timeout=30)
