"""systemd/ccvault.service: it verifies, it scores, its drop-in names every path the daemon
writes, and what it forbids is nothing that recording needs.

Covered here, without systemd as PID 1 (this machine is a container):

* `systemd-analyze verify` and `security --offline=yes` of the unit (and of unit + drop-in);
  `ccvault systemd-dropin` lists exactly the paths the config writes.
* The system-call filter, emulated with seccomp directly: SystemCallFilter= (every line,
  groups expanded by `systemd-analyze syscall-filter`, default action kill unless
  SystemCallErrorNumber=), SystemCallArchitectures=native, NoNewPrivileges=,
  CapabilityBoundingSet= (empty), and the argument filters behind MemoryDenyWriteExecute=,
  RestrictAddressFamilies= and RestrictNamespaces=. Under it run the bundled ffmpeg (encode,
  then segment by stream copy), OpenCV, PyAV and the real daemon (recorder, ingest, motion
  workers, HTTP API). Skipped only where seccomp is unavailable.
* An approximation of the unit's mount namespace, where the test may create one (root):
  ProtectSystem=strict with the drop-in's ReadWritePaths=, PrivateTmp=, PrivateDevices=,
  ProtectProc=invisible, ProcSubset=pid; the daemon records under it and the filter.

Not covered (systemd as PID 1 builds these; README, "Install as a service", says how to check
them on the real machine): the namespace exactly as systemd builds it, ProtectHome=,
PrivateUsers=, User=/Group=, UMask=, ProtectKernelModules=/Logs=, ProtectClock=,
ProtectHostname=, RestrictRealtime=, LockPersonality=, RestrictSUIDSGID=, RemoveIPC=, and
Type=notify with its watchdog (the daemon's side of that: tests/test_sdnotify.py).
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CCVAULT, REPO, Daemon, cli_json, run_cli, wait_for, write_config

UNIT = REPO / "systemd" / "ccvault.service"
ANALYZE = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60)


def service_settings(unit: Path) -> list[tuple[str, str]]:
    """The [Service] section's assignments, in order (repeated keys kept)."""
    settings, section = [], ""
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            settings.append((key.strip(), value.strip()))
    return settings


def installed_copy(directory: Path) -> Path:
    """The unit as installed, but starting the ccvault of this venv (verify checks ExecStart)."""
    directory.mkdir(parents=True, exist_ok=True)
    ccvault = Path(sys.executable).parent / "ccvault"
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={ccvault}", UNIT.read_text(), flags=re.M)
    unit = directory / "ccvault.service"
    unit.write_text(text)
    return unit


def assert_verifies(unit: Path) -> None:
    result = analyze("verify", str(unit))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "ccvault" not in output, output  # no warning about our unit or its drop-ins


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    assert_verifies(installed_copy(tmp_path))


def test_unit_hardening_scores_at_most_2(tmp_path: Path) -> None:
    result = analyze("security", "--offline=yes", str(installed_copy(tmp_path)))
    match = re.search(r"Overall exposure level for ccvault\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_dropin_names_every_path_the_daemon_writes(tmp_path: Path) -> None:
    volumes = [
        {"name": "hot", "path": str(tmp_path / "hot"), "role": "hot"},
        {
            "name": "archive",
            "path": str(tmp_path / "archive disk"),
            "role": "archive",
            "require_mountpoint": True,
        },
        {"name": "inner", "path": str(tmp_path / "state" / "inner"), "role": "archive"},
    ]
    for name in ("state", "hot", "spool", "audit", "exports", "evidence"):
        (tmp_path / name).mkdir()
    config = write_config(
        tmp_path / "state",
        [{"name": "door", "url": "demo://"}],
        volumes=volumes,
        spool=tmp_path / "spool",
    )
    with config.open("a") as f:
        f.write(
            f'\n[audit]\npath = "{tmp_path}/audit/audit.jsonl"\n'
            f'[export]\ndir = "{tmp_path}/exports"\n'
            f'allowed_dirs = ["{tmp_path}/evidence", "{tmp_path}/state/shared"]\n'
        )
    result = run_cli(config, "systemd-dropin", "--output", "-")
    assert result.returncode == 0, result.stderr
    assert "does not exist" not in result.stderr  # the archive may be unmounted at boot
    assert [line for line in result.stdout.splitlines() if not line.startswith("#")] == [
        "[Service]",
        f'ReadWritePaths="-{tmp_path}/archive disk"',  # may be absent at boot; quoted: a blank
        f"ReadWritePaths={tmp_path}/audit",
        f"ReadWritePaths={tmp_path}/evidence",
        f"ReadWritePaths={tmp_path}/exports",
        f"ReadWritePaths={tmp_path}/hot",
        f"ReadWritePaths={tmp_path}/spool",
        f"ReadWritePaths={tmp_path}/state",  # the catalog's; also holds inner and shared
    ]
    assert f"#   {config}\n" in result.stdout and "systemctl daemon-reload" in result.stdout

    unit = installed_copy(tmp_path / "unit")
    dropin = unit.parent / "ccvault.service.d" / "ccvault-paths.conf"
    report = cli_json(config, "systemd-dropin", "--output", str(dropin))
    assert dropin.read_text() == result.stdout
    assert report == {
        "path": str(dropin),
        "ignore_if_missing": [f"{tmp_path}/archive disk"],
        "read_write_paths": [
            f"{tmp_path}/{name}"
            for name in ("archive disk", "audit", "evidence", "exports", "hot", "spool", "state")
        ],
    }
    assert_verifies(unit)  # the unit with its drop-in (a misquoted path would warn)


# --- The syscall filter -------------------------------------------------------------------

# Runs before the command it then execs: NoNewPrivileges, then the unit's filters, as systemd
# loads them just before exec'ing ExecStart (the command's children inherit them).
SANDBOX = r"""
import ctypes, errno, json, os, sys
import pyseccomp as sc

spec = json.loads(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
if spec["no_capabilities"] and os.geteuid() == 0:  # CapabilityBoundingSet= (empty)
    cap = 0
    while libc.prctl(24, cap, 0, 0, 0) == 0:  # PR_CAPBSET_DROP, until past the last one
        cap += 1
    if ctypes.get_errno() != errno.EINVAL:
        raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap})")
if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
    raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")

args = sc.SyscallFilter(sc.ALLOW)  # argument checks; stacked filters: the strictest wins
if spec["mdwe"]:
    eperm, write_exec, exec_ = sc.ERRNO(errno.EPERM), 0x2 | 0x4, 0x4
    args.add_rule(eperm, "mmap", sc.Arg(2, sc.MASKED_EQ, write_exec, write_exec))
    args.add_rule(eperm, "mprotect", sc.Arg(2, sc.MASKED_EQ, exec_, exec_))
    args.add_rule(eperm, "pkey_mprotect", sc.Arg(2, sc.MASKED_EQ, exec_, exec_))
    args.add_rule(eperm, "shmat", sc.Arg(2, sc.MASKED_EQ, 0o100000, 0o100000))  # SHM_EXEC
if spec["families"]:
    allowed, deny = sorted(spec["families"]), sc.ERRNO(errno.EAFNOSUPPORT)
    args.add_rule(deny, "socket", sc.Arg(0, sc.LT, allowed[0]))
    args.add_rule(deny, "socket", sc.Arg(0, sc.GT, allowed[-1]))
    for family in range(allowed[0] + 1, allowed[-1]):
        if family not in allowed:
            args.add_rule(deny, "socket", sc.Arg(0, sc.EQ, family))
if spec["namespaces"]:
    eperm = sc.ERRNO(errno.EPERM)
    for flag in spec["namespaces"]:
        args.add_rule(eperm, "unshare", sc.Arg(0, sc.MASKED_EQ, flag, flag))
        args.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    args.add_rule(eperm, "setns")
    args.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # flags unreadable: glibc falls back to clone
args.load()

default = sc.KILL_PROCESS if spec["errno"] is None else sc.ERRNO(spec["errno"])
allow = sc.SyscallFilter(default)  # native architecture only: SystemCallArchitectures=native
for name in spec["allow"]:
    number = sc.resolve_syscall(sc.Arch.NATIVE, name)
    if number >= 0:  # negative: not a system call on this architecture
        allow.add_rule(sc.ALLOW, number)
if os.geteuid() == 0 and "fchown" not in spec["allow"]:
    # Only because this test runs as root, where the unit has User=ccvault: SQLite fchown()s
    # its journal to the database's owner when geteuid() == 0, and never otherwise.
    allow.add_rule(sc.ERRNO(errno.EPERM), "fchown")
allow.load()  # last: loading a filter is itself not on the allow list
os.execv(sys.argv[2], sys.argv[2:])
"""

NAMESPACE_FLAGS = {
    "mnt": 0x20000,
    "cgroup": 0x2000000,
    "uts": 0x4000000,
    "ipc": 0x8000000,
    "user": 0x10000000,
    "pid": 0x20000000,
    "net": 0x40000000,
}
ADDRESS_FAMILIES = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17}


def syscall_groups() -> dict[str, list[str]]:
    """Every @group and its members as this systemd defines them.

    The "# Ungrouped" / "# Unlisted" sections at the end are not a group: none of their
    system calls is allowed by any group."""
    groups: dict[str, list[str]] = {}
    members: list[str] | None = None
    for line in analyze("syscall-filter").stdout.splitlines():
        if line.startswith("@"):
            members = groups.setdefault(line.strip(), [])
        elif not line.startswith("    ") or not line.strip():
            members = None  # a blank line ends a group; a "#" in column 0 starts a non-group
        elif members is not None and not line.strip().startswith("#"):
            members.append(line.strip())
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    out: set[str] = set()
    for name in names:
        name = name.split(":", 1)[0]  # a ":errno" suffix changes the action, not the set
        if name.startswith("@"):
            assert name in groups, f"unknown syscall group {name}"
            out |= expand(groups[name], groups)
        else:
            out.add(name)
    return out


def sandbox_spec(unit: Path) -> dict[str, Any]:
    """The unit's seccomp-based settings, reduced to what SANDBOX loads."""
    settings = service_settings(unit)
    values = dict(settings)  # the last assignment wins for the single-valued keys
    groups = syscall_groups()
    allowed: set[str] | None = None
    for key, value in settings:
        if key != "SystemCallFilter":
            continue
        if not value:
            allowed = None
            continue
        deny, names = value.startswith("~"), value.lstrip("~").split()
        assert not (allowed is None and deny), "emulating allow lists only"
        if allowed is None:
            allowed = expand(["@default"], groups)  # systemd always allows @default
        allowed = allowed - expand(names, groups) if deny else allowed | expand(names, groups)
    assert allowed, "the unit has no SystemCallFilter= allow list"
    assert values.get("SystemCallArchitectures") == "native"
    assert values.get("NoNewPrivileges") == "yes"
    error = values.get("SystemCallErrorNumber")
    families = values.get("RestrictAddressFamilies", "").split()
    assert not families or not families[0].startswith("~")
    return {
        "allow": sorted(allowed),
        "errno": None if error in (None, "", "kill") else getattr(errno, error),
        "mdwe": values.get("MemoryDenyWriteExecute") == "yes",
        "families": [ADDRESS_FAMILIES[f] for f in families],
        "namespaces": list(NAMESPACE_FLAGS.values())
        if values.get("RestrictNamespaces") == "yes"
        else [],
        "no_capabilities": values.get("CapabilityBoundingSet") == "",
    }


@pytest.fixture(scope="module")
def sandbox() -> list[str]:
    """argv prefix that runs a command under the unit's seccomp filters."""
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"libseccomp/pyseccomp unavailable: {exc}")
    status = Path("/proc/self/status").read_text()
    if not re.search(r"^Seccomp:", status, re.M):
        pytest.skip("the kernel has no seccomp")
    return [sys.executable, "-c", SANDBOX, json.dumps(sandbox_spec(UNIT))]


def sandboxed(
    sandbox: list[str], *argv: str, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*sandbox, *argv], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def test_the_emulated_filter_really_filters(sandbox: list[str]) -> None:
    """Guards the emulation itself: forbidden calls kill, argument filters refuse."""
    killed = sandboxed(sandbox, sys.executable, "-c", "import os; os.setuid(0)")
    assert killed.returncode == -signal.SIGSYS, killed.stderr  # @privileged is not allowed
    probe = """
import ctypes, errno, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
rwx = libc.mmap(None, 4096, 7, 0x22, -1, 0)  # PROT_READ|WRITE|EXEC, MAP_PRIVATE|ANONYMOUS
print(errno.errorcode[ctypes.get_errno()] if rwx in (None, 2**64 - 1) else "mapped")
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
    print("netlink")
except OSError as exc:
    print(errno.errorcode[exc.errno])
"""
    result = sandboxed(sandbox, sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["EPERM", "EAFNOSUPPORT"]


@pytest.fixture(scope="module")
def sample(sandbox: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2 s H.264 MP4 that the bundled ffmpeg encodes under the filter."""
    import imageio_ffmpeg

    out = tmp_path_factory.mktemp("media") / "sample.mp4"
    result = sandboxed(
        sandbox,
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=15:duration=2",
        "-c:v",
        "libx264",
        "-g",
        "15",
        "-pix_fmt",
        "yuv420p",
        str(out),
    )
    assert result.returncode == 0, f"ffmpeg under the filter: {result.returncode}\n{result.stderr}"
    return out


def test_ffmpeg_encodes_and_segments_under_the_filter(
    sandbox: list[str], sample: Path, tmp_path: Path
) -> None:
    import imageio_ffmpeg

    result = sandboxed(
        sandbox,
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin",
        "-v",
        "error",
        "-i",
        str(sample),
        "-c",
        "copy",
        "-f",
        "segment",
        "-segment_time",
        "1",
        "-reset_timestamps",
        "1",
        "-segment_list",
        str(tmp_path / "list.csv"),
        str(tmp_path / "%03d.mp4"),
    )
    assert result.returncode == 0, result.stderr
    assert len(sorted(tmp_path.glob("*.mp4"))) == 2
    assert len((tmp_path / "list.csv").read_text().splitlines()) == 2


def test_opencv_reads_and_differences_frames_under_the_filter(
    sandbox: list[str], sample: Path
) -> None:
    script = """
import sys, cv2
cap = cv2.VideoCapture(sys.argv[1])
prev, frames, moving = None, 0, 0
while True:
    ok, frame = cap.read()
    if not ok:
        break
    gray = cv2.GaussianBlur(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (5, 5), 0)
    if prev is not None:
        moving += cv2.countNonZero(cv2.threshold(cv2.absdiff(gray, prev), 25, 255,
                                                 cv2.THRESH_BINARY)[1])
    prev, frames = gray, frames + 1
print(frames, moving)
"""
    result = sandboxed(sandbox, sys.executable, "-c", script, str(sample))
    assert result.returncode == 0, result.stderr
    frames, moving = map(int, result.stdout.split())
    assert frames == 30 and moving > 0


def test_pyav_demuxes_and_decodes_under_the_filter(sandbox: list[str], sample: Path) -> None:
    script = """
import sys, av
with av.open(sys.argv[1]) as container:
    stream = container.streams.video[0]
    packets = [p for p in container.demux(stream) if p.size]
    container.seek(0)
    frame = next(container.decode(stream))
    print(len(packets), sum(p.is_keyframe for p in packets), frame.to_ndarray(format="bgr24").shape)
"""
    result = sandboxed(sandbox, sys.executable, "-c", script, str(sample))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(maxsplit=2) == ["30", "2", "(240, 320, 3)\n"]


class SandboxedDaemon(Daemon):
    """`ccvault run` behind an argv prefix that sets up the sandbox and execs it."""

    def __init__(self, config: Path, prefix: list[str]) -> None:
        super().__init__(config)
        self.prefix = prefix

    def start(self) -> SandboxedDaemon:
        self.proc = subprocess.Popen(
            [*self.prefix, *CCVAULT, "--config", str(self.config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        self._collector = threading.Thread(target=self._collect, args=(self.proc,), daemon=True)
        self._collector.start()
        self.wait_event("daemon.ready", timeout=30)
        return self


@pytest.fixture
def run_sandboxed() -> Iterator[Callable[[Path, list[str]], SandboxedDaemon]]:
    started: list[SandboxedDaemon] = []

    def start(config: Path, prefix: list[str]) -> SandboxedDaemon:
        started.append(SandboxedDaemon(config, prefix))
        return started[-1].start()

    yield start
    for daemon in started:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


def record_and_analyse(daemon: SandboxedDaemon, config: Path) -> None:
    """The whole daemon works: recorder ffmpeg, ingest, a motion worker (spawned, niced),
    the HTTP API, and a clean stop; every process of it is under the filter."""
    daemon.wait_event("http.listening", timeout=10)
    daemon.wait_event("segment.ingested", timeout=20)

    def analysed() -> list[dict[str, Any]]:
        segments = cli_json(config, "segments", "--camera", "door", "--from", "-5m", "--to", "now")
        return [s for s in segments if s["analysed"]]

    wait_for(analysed, timeout=20, what="a segment analysed by a motion worker")
    assert daemon.proc is not None
    processes = [daemon.proc.pid, *(p.pid for p in daemon.descendants())]
    assert len(processes) >= 3  # the daemon, a recorder, a motion worker
    for pid in processes:
        status = Path(f"/proc/{pid}/status").read_text()
        assert re.search(r"^Seccomp:\s+2$", status, re.M), f"pid {pid} is not filtered"
        assert re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    assert daemon.stop() == 0, "".join(daemon.raw[-30:])
    problems = [e for e in daemon.events if e.get("level") in ("error", "critical")]
    assert not problems, problems
    segments = cli_json(config, "segments", "--camera", "door", "--from", "-5m", "--to", "now")
    assert segments and all(s["state"] == "ok" for s in segments)


@pytest.mark.slow
def test_daemon_records_and_analyses_under_the_filter(
    sandbox: list[str], run_sandboxed: Callable[[Path, list[str]], SandboxedDaemon], tmp_path: Path
) -> None:
    config = write_config(tmp_path, [{"name": "door", "url": "demo://?period=4"}])
    record_and_analyse(run_sandboxed(config, sandbox), config)


# --- The mount namespace, approximated ----------------------------------------------------

# bash -c NAMESPACE ns DROPIN ROOT REPO COMMAND...: in a new mount namespace, roughly what
# the unit's namespace options set up, then exec COMMAND. ROOT, the test's directory, stands
# for the host's file system: read-only but for the drop-in's paths, even though it lies
# under /tmp. An approximation of systemd's work, not a replacement for the check on a real
# machine (README).
NAMESPACE = r"""
set -euo pipefail
dropin=$1 root=$2 repo=$3; shift 3
mapfile -t rw < <(sed -n 's/^ReadWritePaths=-\{0,1\}//p' "$dropin")
mount --make-rprivate /
stage=$(mktemp -d /run/ccvault-ns.XXXXXX)
mount -t tmpfs -o mode=700 tmpfs "$stage"
kept=()
for p in "${rw[@]}" "$repo"; do
  [ -d "$p" ] || continue
  mkdir "$stage/${#kept[@]}"; mount --bind "$p" "$stage/${#kept[@]}"; kept+=("$p")
done
# PrivateDevices=: a new /dev with the pseudo devices only (and the host's /dev/shm)
mkdir "$stage/dev"; mount -t tmpfs -o mode=755,nosuid tmpfs "$stage/dev"
for d in null zero full random urandom tty; do
  touch "$stage/dev/$d"; mount --bind "/dev/$d" "$stage/dev/$d"
done
mkdir "$stage/dev/shm"; mount --rbind /dev/shm "$stage/dev/shm"
ln -s /proc/self/fd "$stage/dev/fd"
mount --move "$stage/dev" /dev
# PrivateTmp=
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
# ProtectProc=invisible, ProcSubset=pid
mount -t proc -o subset=pid,hidepid=invisible proc /proc
# The ReadWritePaths= (and the code under test) back in place, also those under /tmp
for p in "${kept[@]}"; do mkdir -p "$p"; done
mkdir -p "$root"; mount --bind "$root" "$root"  # a mount of its own, made read-only below
for i in "${!kept[@]}"; do mount --move "$stage/$i" "${kept[$i]}"; done
umount "$stage" && rmdir "$stage"
# ProtectSystem=strict, ProtectKernelTunables=, ProtectControlGroups=: the rest read-only
findmnt -rn -o TARGET | while read -r target; do
  target=$(printf '%b' "$target")
  case "$target" in /proc|/proc/*|/dev|/dev/*|/tmp|/var/tmp) continue ;; esac
  # Under the private /tmp now, out of reach (e.g. another test's tmpfs): nothing to protect
  [ -e "$target" ] || continue
  for p in "${rw[@]}"; do [ "$target" = "$p" ] && continue 2; done
  mount -o remount,bind,ro "$target"
done
exec "$@"
"""


@pytest.fixture(scope="module")
def namespace() -> list[str]:
    """argv prefix (then DROPIN ROOT REPO COMMAND...) for the approximated namespace."""
    if shutil.which("unshare") is None or shutil.which("findmnt") is None:
        pytest.skip("unshare/findmnt (util-linux) are not installed")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t proc -o subset=pid,hidepid=invisible proc /proc"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot set up a mount namespace here (needs root): {probe.stderr}")
    return ["unshare", "-m", "bash", "-c", NAMESPACE, "ns"]


@pytest.mark.slow
def test_daemon_records_in_the_units_mount_namespace(
    sandbox: list[str],
    namespace: list[str],
    run_sandboxed: Callable[[Path, list[str]], SandboxedDaemon],
    tmp_path: Path,
) -> None:
    """Read-only everything but the drop-in's paths, private /tmp and /dev, /proc with only
    process directories: the drop-in is complete and nothing needs /proc/stat & co.

    Not approximated: ProtectHome= (this test's Python may live under /root), PrivateUsers=,
    User=, ProtectKernelModules=/Logs=, ProtectClock=, ProtectHostname=."""
    for name in ("state", "hot", "spool"):
        (tmp_path / name).mkdir()
    config = write_config(
        tmp_path / "state",
        [{"name": "door", "url": "demo://?period=4"}],
        volumes=[{"name": "hot", "path": str(tmp_path / "hot")}],
        spool=tmp_path / "spool",
    )
    dropin = tmp_path / "ccvault-paths.conf"
    assert run_cli(config, "systemd-dropin", "--output", str(dropin)).returncode == 0
    daemon = run_sandboxed(config, [*namespace, str(dropin), str(tmp_path), str(REPO), *sandbox])
    assert daemon.proc is not None
    inside = Path(f"/proc/{daemon.proc.pid}/root")  # the file system as the daemon sees it
    for path in (Path("/etc"), REPO, tmp_path):
        with pytest.raises(OSError) as refused:
            (inside / path.relative_to("/") / "ccvault-probe").write_text("")
        assert refused.value.errno == errno.EROFS
    assert not (inside / "proc" / "stat").exists()
    assert (inside / tmp_path.relative_to("/") / "hot").is_dir()
    record_and_analyse(daemon, config)
