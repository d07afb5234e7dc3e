"""The shared backends a team runs, started on this machine on loopback only: PostgreSQL (MLflow's
runs and registry), an S3-compatible store (moto's server: MLflow's artifacts), an MLflow server
over both, and Redis (Feast's online store). What the tests run against, and what a user tries a
switch with before pointing the platform at the team's own servers.

    python deploy/local/services.py start mlflow      # PostgreSQL + S3 + the MLflow server over them
    python deploy/local/services.py start redis       # Redis, for Feast's online store
    python deploy/local/services.py install java      # the JVM for Feast's Spark offline store (no server)
    python deploy/local/services.py status
    python deploy/local/services.py stop              # everything started from this state folder

Each service keeps its data, log and process id under `$GREC_HOME/services/<name>/` (or
`--root`); `services.json` there says what runs and where. `start` prints the settings that point
the platform at it (MLFLOW_TRACKING_URI; FEAST_FS_YAML_FILE_PATH and GREC_REDIS). Nothing listens beyond
127.0.0.1; servers missing from the machine are installed from Debian's packages or are already in
the venv (moto, mlflow).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

BIN = Path(sys.executable).parent
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql-15
REDIS_SERVER = Path("/usr/bin/redis-server")  # Debian's redis-server
REPO = Path(__file__).resolve().parents[2]
BUCKET = "grec-artifacts"
# moto accepts any key; these name it as a local store in the server's log
S3_ENV = {"AWS_ACCESS_KEY_ID": "grec-local", "AWS_SECRET_ACCESS_KEY": "grec-local", "AWS_DEFAULT_REGION": "us-east-1"}


class ServiceError(RuntimeError):
    """A service that would not start, with what its log said."""


@dataclass
class Service:
    name: str
    port: int
    pid: int
    url: str
    folder: str

    def running(self) -> bool:
        try:  # started by this process: reap it if it ended (a zombie still answers kill(pid, 0))
            if os.waitpid(self.pid, os.WNOHANG)[0] == self.pid:
                return False
        except ChildProcessError:
            pass
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, owned by another user (postgres)
            return True
        return True


def default_root() -> Path:
    from grec.settings import state_dir

    return state_dir() / "services"


def read(root: Path) -> dict[str, Service]:
    path = root / "services.json"
    if not path.exists():
        return {}
    return {name: Service(**s) for name, s in json.loads(path.read_text()).items()}


def _save(root: Path, services: dict[str, Service]) -> None:
    from grec.io import write_json

    write_json(root / "services.json", {name: asdict(s) for name, s in services.items()})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, log: Path, proc: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    raise ServiceError(f"{what} did not start within {timeout:.0f} s; its log ({log}):\n{tail}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status < 500
    except OSError:
        return False


def _spawn(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """A server in its own session (a Ctrl-C of the caller does not reach it), its output in `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                start_new_session=True)


def apt_install(*packages: str) -> None:
    """Debian's `packages`, installed with apt-get as root (the servers and tools a test needs)."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise ServiceError(f"{' '.join(packages)} not installed and this machine cannot install it here "
                           f"(needs apt-get as root): install Debian's {' '.join(packages)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"`{' '.join(args)}` failed: {done.stderr[-2000:]}")


# -- PostgreSQL ---------------------------------------------------------------------------------

def _as_postgres_user() -> list[str]:
    """initdb refuses to run as root: as root, the cluster belongs to the `postgres` user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _postgres_home(root: Path) -> Path:
    """The cluster's folder: root/postgres, or, as root where the `postgres` user cannot reach it
    (a state folder under /root, pytest's 0700 temporary folders), a folder of its own in /tmp
    named after it (recorded in services.json, so `stop` finds it)."""
    folder = root / "postgres"
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return folder
    shutil.chown(folder, "postgres")
    if subprocess.run([*_as_postgres_user(), "test", "-w", str(folder)]).returncode == 0:
        return folder
    import hashlib
    import tempfile

    own = Path(tempfile.gettempdir()) / f"grec-postgres-{hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:12]}"
    own.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(own, "postgres")
    return own


def start_postgres(root: Path) -> Service:
    if not (POSTGRES_BIN / "initdb").exists():
        apt_install("postgresql-15")
    folder = _postgres_home(root)
    data, log, port = folder / "data", folder / "postgres.log", _free_port()
    as_pg = _as_postgres_user()
    if not (data / "PG_VERSION").exists():
        done = subprocess.run([*as_pg, str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "grec", "--auth=trust",
                               "-E", "UTF8", "--no-instructions"], capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"initdb {data} failed: {done.stderr[-2000:]}")
    # loopback only, the socket in our own folder (not /var/run/postgresql)
    options = f"-h 127.0.0.1 -p {port} -k {folder}"
    done = subprocess.run([*as_pg, str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
                           "-t", "60", "start"], capture_output=True, text=True)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise ServiceError(f"PostgreSQL did not start ({done.stderr.strip()}); its log ({log}):\n{tail}")
    pid = int((data / "postmaster.pid").read_text().split()[0])
    for db in ("mlflow",):
        subprocess.run([*as_pg, str(POSTGRES_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grec", db],
                       capture_output=True, text=True)
    return Service("postgres", port, pid, f"postgresql+psycopg2://grec@127.0.0.1:{port}/mlflow", str(folder))


def stop_postgres(service: Service, remove: bool = False) -> None:
    subprocess.run([*_as_postgres_user(), str(POSTGRES_BIN / "pg_ctl"), "-D", str(Path(service.folder) / "data"),
                    "-m", "fast", "-w", "stop"], capture_output=True, text=True)
    if remove:
        shutil.rmtree(service.folder, ignore_errors=True)


# -- S3 (moto) ----------------------------------------------------------------------------------

def start_s3(root: Path) -> Service:
    folder = root / "s3"
    folder.mkdir(parents=True, exist_ok=True)
    log, port = folder / "s3.log", _free_port()
    proc = _spawn([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], log, env=S3_ENV)
    url = f"http://127.0.0.1:{port}"
    _wait(lambda: _http_ok(f"{url}/moto-api/"), "the S3 store (moto_server)", log, proc)
    import boto3

    boto3.client("s3", endpoint_url=url, **_boto_keys()).create_bucket(Bucket=BUCKET)
    return Service("s3", port, proc.pid, url, str(folder))


def _boto_keys() -> dict:
    return {"aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
            "region_name": S3_ENV["AWS_DEFAULT_REGION"]}


# -- MLflow -------------------------------------------------------------------------------------

def start_mlflow(root: Path, postgres: Service, s3: Service) -> Service:
    folder = root / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    log, port = folder / "mlflow.log", _free_port()
    env = {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": s3.url,
           # no background job runners: this server only tracks and serves the registry
           "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = _spawn([str(BIN / "mlflow"), "server", "--backend-store-uri", postgres.url,
                   "--artifacts-destination", f"s3://{BUCKET}/mlflow", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", "2"], log, env=env)
    url = f"http://127.0.0.1:{port}"
    _wait(lambda: _http_ok(f"{url}/health"), "the MLflow server", log, proc, timeout=180)
    return Service("mlflow", port, proc.pid, url, str(folder))


# -- Redis (Feast's online store) ----------------------------------------------------------------

def start_redis(root: Path) -> Service:
    if not REDIS_SERVER.exists():
        apt_install("redis-server")
    folder = root / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    log, port = folder / "redis.log", _free_port()
    # loopback only; snapshots (the default save policy) in its own folder, so a restart keeps the
    # materialized features; no config file, so nothing of the machine's /etc/redis applies
    proc = _spawn([str(REDIS_SERVER), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
                   "--protected-mode", "yes", "--daemonize", "no", "--logfile", ""], log)
    import redis

    def answers() -> bool:
        try:
            return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping()
        except redis.exceptions.RedisError:
            return False

    _wait(answers, "Redis", log, proc)
    return Service("redis", port, proc.pid, f"127.0.0.1:{port}", str(folder))


# -- Java (Spark's driver, for Feast's Spark offline store) -------------------------------------

JAVA_PACKAGE = "default-jre-headless"  # Debian's default JRE: 17 on bookworm (tested here), 21 on trixie; Spark 4 runs on both


def ensure_java() -> str:
    """The `java` Spark will start (installed from Debian's packages if there is none); not a
    server: Spark in local mode runs inside the process that opens the feature store."""
    java_home = os.environ.get("JAVA_HOME", "")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    if shutil.which("java") is None:
        apt_install(JAVA_PACKAGE)
    return shutil.which("java") or ""


# -- all of them --------------------------------------------------------------------------------

NEEDS = {"postgres": [], "s3": [], "mlflow": ["postgres", "s3"], "redis": []}


def start(names: list[str], root: Path) -> dict[str, Service]:
    """Start `names` (and what they need) unless already running; returns every service there."""
    unknown = sorted(set(names) - set(NEEDS))
    if unknown:
        raise ServiceError(f"unknown services {unknown}; known: {', '.join(NEEDS)}")
    root.mkdir(parents=True, exist_ok=True)
    services = {n: s for n, s in read(root).items() if s.running()}
    order = [n for n in NEEDS if n in names or any(n in NEEDS[m] for m in names)]
    for name in order:
        if name in services:
            continue
        if name == "mlflow":
            services[name] = start_mlflow(root, services["postgres"], services["s3"])
        else:
            services[name] = {"postgres": start_postgres, "s3": start_s3, "redis": start_redis}[name](root)
        _save(root, services)
    return services


def stop(root: Path, names: list[str] | None = None, remove: bool = False) -> list[str]:
    """Stop `names` (default: all) started under `root`, dependants first; returns what stopped.
    `remove`: delete their data too (PostgreSQL's cluster may live outside `root`)."""
    services = read(root)
    stopped = []
    for name in reversed(list(NEEDS)):
        service = services.get(name)
        if service is None or (names and name not in names):
            continue
        if name == "postgres":
            stop_postgres(service, remove)
        elif service.running():
            os.killpg(service.pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while service.running() and time.monotonic() < deadline:
                time.sleep(0.2)
            if service.running():
                os.killpg(service.pid, signal.SIGKILL)
        stopped.append(name)
        del services[name]
    _save(root, services)
    return stopped


def settings_lines(services: dict[str, Service]) -> list[str]:
    """How to point the platform at what runs."""
    lines = []
    if "mlflow" in services:
        lines.append(f"export MLFLOW_TRACKING_URI={services['mlflow'].url}")
    if "redis" in services:
        lines += [f"export {k}={v}" for k, v in redis_settings(services["redis"]).items()]
    return lines


def redis_settings(redis: Service) -> dict[str, str]:
    """The environment that points Feast (and grec's feature store) at this Redis."""
    return {"FEAST_FS_YAML_FILE_PATH": str(REPO / "feature_repo" / "feature_store.redis.yaml"), "GREC_REDIS": redis.url}


app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True)
RootOpt = Annotated[Path | None, typer.Option(help="Where the services keep their data (default $GREC_HOME/services)")]


@app.command("start")
def start_command(names: Annotated[list[str], typer.Argument(help=f"Any of: {', '.join(NEEDS)}")], root: RootOpt = None):
    """Start services (and what they need) on loopback; print how to use them."""
    try:
        services = start(names, root or default_root())
    except ServiceError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    for s in services.values():
        typer.echo(f"{s.name}: {s.url} (pid {s.pid}, {s.folder})")
    for line in settings_lines(services):
        typer.echo(line)


@app.command("install")
def install_command(what: Annotated[str, typer.Argument(help="java: the runtime Feast's Spark offline store needs")]):
    """Install what a configuration needs that is not a server (Debian's packages, as root)."""
    if what != "java":
        typer.echo(f"error: cannot install {what!r}; known: java", err=True)
        raise typer.Exit(1)
    try:
        typer.echo(f"java: {ensure_java()}")
    except ServiceError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"export FEAST_FS_YAML_FILE_PATH={REPO / 'feature_repo' / 'feature_store.spark.yaml'}")


@app.command("stop")
def stop_command(names: Annotated[list[str] | None, typer.Argument(help="Default: all")] = None, root: RootOpt = None,
                 remove: Annotated[bool, typer.Option(help="Delete their data too")] = False):
    """Stop what was started under the state folder."""
    typer.echo("stopped: " + (", ".join(stop(root or default_root(), names, remove)) or "nothing was running"))


@app.command("status")
def status_command(root: RootOpt = None):
    for s in read(root or default_root()).values():
        typer.echo(f"{s.name}: {s.url} ({'running' if s.running() else 'NOT running'}, pid {s.pid})")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # the checkout's grec, run as a script
    app()
