"""A container engine on this machine and the platform's images built in it, with or without a
registry: what the container tier of the tests runs, and what a user tries the images with before
pushing them to a cluster's registry.

    python deploy/local/containers.py start            # Debian's dockerd, its own data root and socket
    python deploy/local/containers.py base             # the base image from Debian's packages (no registry)
    python deploy/local/containers.py build            # the project image (deploy/Dockerfile)
    python deploy/local/containers.py build --variant spark
    python deploy/local/containers.py ranker <pipeline run>/package-service/bento    # the ranking service
    python deploy/local/containers.py status
    python deploy/local/containers.py stop

The engine is Debian's `docker.io` (installed with apt when missing), started with its own data
root, exec root, socket and pid file under the engine folder (`$GREC_DOCKER_ROOT`, default
`~/.cache/grec/docker`: outside any state folder, so the layer cache, several GB, survives between
runs and test sessions, like pip's cache). Loopback only: no TCP socket, no bridge, no iptables
rules, no forwarding; containers run with the host's network namespace and so reach the project's
servers on 127.0.0.1 and nothing a host process could not. `start` prints the `DOCKER_HOST` that
points a docker client (Debian's, `/usr/bin/docker`, with BuildKit) at it.

Builds behind a package proxy: the CA bundle the host's pip trusts and the host's http(s) index
URLs reach the one `RUN` that installs the lock as BuildKit secrets (never in a layer); wheels
the lock pins that no index serves (here the CPU build of torch, from the host's find-links) are
linked into deploy/wheels/ (git-ignored), which that `RUN` reads as find-links.
"""

from __future__ import annotations

import configparser
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

REPO = Path(__file__).resolve().parents[2]
DOCKERD = Path("/usr/sbin/dockerd")  # Debian's docker.io
DOCKER = Path("/usr/bin/docker")  # Debian's client: BuildKit built in (another `docker` may be first on PATH)
DEBOOTSTRAP = Path("/usr/sbin/debootstrap")
WHEELS = REPO / "deploy" / "wheels"
# What each image variant holds, exactly: the ranker the `ranker` dependency group's lock; the
# project image that plus the rest of the project's dependencies (on the same first layer); spark
# the project image plus the spark extra.
LOCKS = {"ranker": REPO / "deploy" / "requirements-serving.lock", "project": REPO / "deploy" / "requirements-project.lock",
         "spark": REPO / "deploy" / "requirements-spark.lock"}
# The public base the Dockerfiles name (what users pull), and the stand-in built from Debian's
# packages where no registry answers (the same Python, Debian bookworm, tagged locally).
PUBLIC_BASE = "python:3.11-slim"
LOCAL_BASE = "grec-base/python:3.11-bookworm"
BASE_PACKAGES = ("python3.11", "python3.11-venv", "python3-venv", "python3-pip", "python3-distutils",
                 "python-is-python3", "ca-certificates")


class ContainerError(RuntimeError):
    """An engine that would not start, or an image that would not build, with what it said."""


def default_root() -> Path:
    return Path(os.environ.get("GREC_DOCKER_ROOT") or Path.home() / ".cache" / "grec" / "docker")


@dataclass
class Engine:
    """A dockerd of this project's, reached at root/docker.sock."""
    root: Path

    @property
    def host(self) -> str:
        return f"unix://{self.root / 'docker.sock'}"

    @property
    def pid_file(self) -> Path:
        return self.root / "dockerd.pid"

    def env(self) -> dict[str, str]:
        """The environment a docker client (or docker-py) needs to reach this engine."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def docker(self, *args: str, check: bool = True, capture: bool = True, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run([str(DOCKER), *args], env=self.env(), capture_output=capture, text=True, **kwargs)
        if check and done.returncode != 0:
            raise ContainerError(f"`docker {' '.join(args)}` failed ({done.returncode}): "
                                 f"{(done.stderr or '')[-3000:]}")
        return done

    def answers(self) -> bool:
        if not (self.root / "docker.sock").exists() or not DOCKER.exists():
            return False
        return self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=20).returncode == 0

    def client(self):
        """docker-py's client of this engine (what kfp's DockerRunner uses)."""
        import docker

        return docker.DockerClient(base_url=self.host)

    def has_image(self, tag: str) -> bool:
        return self.docker("image", "inspect", tag, check=False).returncode == 0


def _apt_install(*packages: str) -> None:
    """services.py's installer (Debian's packages, as root), its refusal as this module's error."""
    from deploy.local.services import ServiceError, apt_install

    try:
        apt_install(*packages)
    except ServiceError as e:
        raise ContainerError(str(e)) from None


def start(root: Path | None = None, timeout: float = 120.0) -> tuple[Engine, bool]:
    """The engine at `root`, started unless it already answers; returns it and whether this call
    started it (a caller stops only what it started)."""
    engine = Engine(Path(root or default_root()))
    if engine.answers():
        return engine, False
    if not (DOCKERD.exists() and DOCKER.exists()):
        _apt_install("docker.io")
    if os.geteuid() != 0:
        raise ContainerError("dockerd runs as root here (no rootless setup): run as root, or point DOCKER_HOST "
                             "at an engine you have")
    engine.root.mkdir(parents=True, exist_ok=True)
    (engine.root / "docker.sock").unlink(missing_ok=True)  # left by an engine killed outright
    log = engine.root / "dockerd.log"
    args = [str(DOCKERD), "--data-root", str(engine.root / "data"), "--exec-root", str(engine.root / "exec"),
            "--pidfile", str(engine.pid_file), "--host", engine.host,
            # loopback only: no bridge, no NAT or forwarding rules; containers use the host's network
            "--bridge", "none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
            "--log-level", "warn"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if engine.answers():
            return engine, True
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:]
    proc.kill()
    raise ContainerError(f"dockerd did not start within {timeout:.0f} s; its log ({log}):\n{tail}")


def stop(root: Path | None = None, timeout: float = 60.0) -> bool:
    """Stop the engine at `root` (its containers stop with it); True when one was running."""
    engine = Engine(Path(root or default_root()))
    try:
        pid = int(engine.pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    """Whether `pid` still runs. Started by this process (a test session's engine), an ended dockerd
    stays a zombie, which kill(pid, 0) still finds, until it is reaped here."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:  # not our child: another process started it
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- the base image without a registry ----------------------------------------------------------

def apt_mirror() -> str:
    """The Debian mirror apt uses on this machine (its deb822 or one-line sources)."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + [Path("/etc/apt/sources.list")]:
        text = path.read_text() if path.exists() else ""
        if match := (re.search(r"^URIs:\s*(\S+/debian)/?\s*$", text, re.M) or re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s", text, re.M)):
            return match.group(1)
    return "http://deb.debian.org/debian"


def build_base(engine: Engine, tag: str = LOCAL_BASE, log=print) -> str:
    """The stand-in for python:3.11-slim from Debian's packages (debootstrap minbase of bookworm
    with Python 3.11, pip and the CA certificates), imported as `tag`; pip may install into the
    system Python as in the public image (PEP 668's marker removed)."""
    if not DEBOOTSTRAP.exists():
        _apt_install("debootstrap")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grec-base-") as folder:
        rootfs = Path(folder) / "rootfs"
        done = subprocess.run([str(DEBOOTSTRAP), "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                               "bookworm", str(rootfs), apt_mirror()], capture_output=True, text=True)
        if done.returncode != 0:
            raise ContainerError(f"debootstrap failed: {(done.stderr or done.stdout)[-3000:]}")
        (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / cache).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run([str(DOCKER), "import", "--change", "CMD [\"python3\"]", "--change",
                                   "ENV LANG=C.UTF-8", "-", tag], stdin=tar.stdout, env=engine.env(),
                                  capture_output=True, text=True)
        tar.wait()
        if imported.returncode != 0:
            raise ContainerError(f"docker import failed: {imported.stderr[-2000:]}")
    log(f"{tag}: built from Debian's packages ({apt_mirror()}) in {time.monotonic() - began:.0f} s")
    return tag


# -- the project's images -----------------------------------------------------------------------

@functools.cache
def _pip_config() -> dict[str, str]:
    """The host pip's settings that a build behind the same proxy needs (`pip config list`)."""
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    out = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        out[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    return out


def proxy_secrets(folder: Path) -> list[str]:
    """`docker build --secret` arguments: the host's CA bundle (pip-ca) and a pip configuration with
    the host's http(s) index URLs (pip-conf); none where the host's pip uses neither."""
    config = _pip_config()
    args = []
    ca = os.environ.get("PIP_CERT") or config.get("cert") or os.environ.get("REQUESTS_CA_BUNDLE")
    if ca and Path(ca).is_file():
        args += ["--secret", f"id=pip-ca,src={ca}"]
    conf = configparser.ConfigParser()
    conf["global"] = {}
    for key in ("index-url", "extra-index-url"):  # file:// indexes are the host's own folders
        urls = [u for u in os.environ.get(f"PIP_{key.upper().replace('-', '_')}", config.get(key, "")).split()
                if u.startswith(("http://", "https://"))]
        if urls:
            conf["global"][key] = " ".join(urls)
    if conf["global"]:
        path = folder / "pip.conf"
        with open(path, "w") as f:
            conf.write(f)
        args += ["--secret", f"id=pip-conf,src={path}"]
    return args


def link_local_wheels(*locks: Path) -> list[str]:
    """Wheels the locks pin with a local version (torch's `+cpu`) that the host's pip finds in its
    find-links folders, hard-linked (or copied) into deploy/wheels/; returns their names."""
    wanted = sorted({pin for lock in locks
                     for pin in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+\+\S+?)(?:\s|$)", lock.read_text(), re.M)})
    folders = [Path(f) for f in (os.environ.get("PIP_FIND_LINKS") or _pip_config().get("find-links", "")).split()
               if Path(f).is_dir()]
    linked = []
    for name, version in wanted:
        stem = f"{name.replace('-', '_')}-{version}-"
        for folder in folders:
            for wheel in folder.glob(f"{stem}*.whl"):
                target = WHEELS / wheel.name
                if not target.exists():
                    try:
                        os.link(wheel, target)
                    except OSError:
                        shutil.copy2(wheel, target)
                linked.append(wheel.name)
    return linked


def build_image(engine: Engine, tag: str, variant: str = "project", base: str | None = None, log=print) -> dict:
    """Build deploy/Dockerfile's `variant` stage as `tag` on `base` (default: the public base when
    the engine has it, else the local stand-in, built first when missing); returns what was built
    and how long it took."""
    if variant not in LOCKS:
        raise ContainerError(f"unknown image variant {variant!r}; known: {', '.join(LOCKS)}")
    if base is None:
        base = PUBLIC_BASE if engine.has_image(PUBLIC_BASE) else LOCAL_BASE
        if base == LOCAL_BASE and not engine.has_image(LOCAL_BASE):
            build_base(engine, LOCAL_BASE, log=log)
    local_wheels = link_local_wheels(*LOCKS.values())  # every stage's, the first layer's among them
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grec-build-") as folder:
        args = ["build", "--network", "host", "-f", str(REPO / "deploy" / "Dockerfile"), "--target", variant,
                "--build-arg", f"BASE_IMAGE={base}", "-t", tag, *proxy_secrets(Path(folder))]
        if any(w.startswith("torch-") for w in local_wheels):  # no need for the PyTorch index
            args += ["--build-arg", "PIP_EXTRA_INDEX_URL="]
        done = engine.docker(*args, str(REPO), check=False)
    if done.returncode != 0:
        raise ContainerError(f"building {tag} failed:\n{done.stderr[-4000:]}")
    seconds = time.monotonic() - began
    log(f"{tag}: built ({variant}, on {base}) in {seconds:.0f} s")
    return {"tag": tag, "variant": variant, "base": base, "seconds": round(seconds, 1), "size": image_size(engine, tag)}


BENTO_CONTEXT = REPO / "deploy" / "bento"  # git-ignored: the Bento the ranker stage copies


def unpack_bento(bento: Path) -> str:
    """An exported Bento (the package-service step's `bento` artifact, `bentoml export`) unpacked
    into deploy/bento/ for the ranker stage; returns its tag (name:version)."""
    import tarfile

    import yaml

    shutil.rmtree(BENTO_CONTEXT, ignore_errors=True)
    BENTO_CONTEXT.mkdir(parents=True)
    try:
        with tarfile.open(bento) as archive:
            archive.extractall(BENTO_CONTEXT, filter="data")
    except (tarfile.TarError, OSError) as e:
        shutil.rmtree(BENTO_CONTEXT, ignore_errors=True)
        raise ContainerError(f"{bento}: not an exported Bento ({e})") from None
    about = yaml.safe_load((BENTO_CONTEXT / "bento.yaml").read_text())
    return f"{about['name']}:{about['version']}"


def build_ranker(engine: Engine, bento: Path, tag: str | None = None, base: str | None = None, log=print) -> dict:
    """The ranking service's image: deploy/Dockerfile's ranker stage over the exported `bento`;
    tagged `tag` (default: the Bento's own name:version)."""
    bento_tag = unpack_bento(Path(bento))
    try:
        return build_image(engine, tag or bento_tag, "ranker", base, log=log)
    finally:
        shutil.rmtree(BENTO_CONTEXT, ignore_errors=True)


def image_size(engine: Engine, tag: str) -> int:
    return int(engine.docker("image", "inspect", tag, "--format", "{{.Size}}").stdout.strip())


def layers(engine: Engine, tag: str) -> list[dict]:
    """The image's layers, oldest first: size in bytes and the instruction that made each."""
    out = engine.docker("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", tag).stdout
    rows = []
    for line in reversed(out.strip().splitlines()):
        size, _, made_by = line.partition("\t")
        rows.append({"size": size, "made_by": made_by})
    return rows


app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True)
RootOpt = Annotated[Path | None, typer.Option(help="The engine's folder (default $GREC_DOCKER_ROOT or ~/.cache/grec/docker)")]


def _fail(e: Exception):
    typer.echo(f"error: {e}", err=True)
    raise typer.Exit(1) from None


@app.command("start")
def start_command(root: RootOpt = None):
    """Start the engine (installing Debian's docker.io when missing); print its DOCKER_HOST."""
    try:
        engine, started = start(root)
    except ContainerError as e:
        _fail(e)
    typer.echo(f"dockerd {'started' if started else 'already running'}: {engine.root}")
    typer.echo(f"export DOCKER_HOST={engine.host}")


@app.command("stop")
def stop_command(root: RootOpt = None):
    """Stop the engine (its containers with it); its data root and layer cache stay."""
    typer.echo("stopped" if stop(root) else "not running")


@app.command("status")
def status_command(root: RootOpt = None):
    engine = Engine(Path(root or default_root()))
    typer.echo(f"dockerd at {engine.host}: {'running' if engine.answers() else 'NOT running'}")


@app.command("base")
def base_command(tag: Annotated[str, typer.Option(help="The local tag")] = LOCAL_BASE, root: RootOpt = None):
    """Build the base image from Debian's packages, where no registry answers."""
    try:
        build_base(start(root)[0], tag, log=typer.echo)
    except ContainerError as e:
        _fail(e)


@app.command("ranker")
def ranker_command(bento: Annotated[Path, typer.Argument(help="An exported Bento: the training pipeline's "
                                                             "package-service/bento, or `bentoml export`'s file")],
                   tag: Annotated[str | None, typer.Option(help="Default: the Bento's name:version")] = None,
                   base: Annotated[str | None, typer.Option(help=f"Default: {PUBLIC_BASE} if present, else {LOCAL_BASE}")] = None,
                   root: RootOpt = None):
    """Build the ranking service's image from an exported Bento."""
    try:
        built = build_ranker(start(root)[0], bento, tag, base, log=typer.echo)
    except ContainerError as e:
        _fail(e)
    typer.echo(f"{built['tag']}: {built['size'] / 1e9:.2f} GB")


@app.command("build")
def build_command(variant: Annotated[str, typer.Option(help="project, or spark (with the JRE and pyspark)")] = "project",
                  tag: Annotated[str | None, typer.Option(help="Default: the components' image (GREC_IMAGE)")] = None,
                  base: Annotated[str | None, typer.Option(help=f"Default: {PUBLIC_BASE} if present, else {LOCAL_BASE}")] = None,
                  root: RootOpt = None):
    """Build the project image (deploy/Dockerfile) from the lock."""
    sys.path.insert(0, str(REPO))
    from components import BASE_IMAGE

    tag = tag or (BASE_IMAGE if variant == "project" else f"{BASE_IMAGE}-{variant}")
    try:
        built = build_image(start(root)[0], tag, variant, base, log=typer.echo)
    except ContainerError as e:
        _fail(e)
    typer.echo(f"{built['tag']}: {built['size'] / 1e9:.2f} GB")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # deploy.local.services, run as a script
    app()
