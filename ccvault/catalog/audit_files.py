"""The audit log's files: the live one (`audit.jsonl`) and the files sealed by rotation, named
by their first record's seq (`audit.jsonl.000000000001`, twelve digits) so that sorting the
names is walking the chain; the checkpoints beside them (`audit.jsonl.checkpoints`); and the
name of the node whose chain they are (`audit.jsonl.node`: one file, one node's chain).

Sealing is crash-safe without a rename that could replace anything: the live file is
hard-linked to its sealed name, the directory fsynced, then the live name unlinked. A crash in
between leaves one inode under both names, which `listing` reads once and the next append
finishes (`finish_sealing`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault.host.durable import fsync_dir, make_dirs, open_private

SEAL_DIGITS = 12
_CHUNK = 8192
MARKERS = ("audit.discontinuity", "audit.uncommitted", "audit.repaired")


@dataclass(frozen=True)
class LogFile:
    path: Path
    first_seq: int | None  # from a sealed file's name; None for the live file
    ident: tuple[int, int]  # (device, inode): a file keeps it when it is sealed
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name


def sealed_path(live: Path, first_seq: int) -> Path:
    return live.with_name(f"{live.name}.{first_seq:0{SEAL_DIGITS}d}")


def checkpoints_path(live: Path) -> Path:
    return live.with_name(f"{live.name}.checkpoints")


def owner_path(live: Path) -> Path:
    return live.with_name(f"{live.name}.node")


def claim_owner(live: Path, node: str) -> str:
    """The node whose chain the log at `live` is: the name beside it, or — none there yet (a
    new log, or one from before nodes) — `node`, written whole under a private name and
    linked in place, so a crash leaves no empty claim and a claim is never replaced."""
    owner = owner_path(live)
    if not owner.exists():
        make_dirs(owner.parent)
        draft = owner.with_name(f".{owner.name}.{os.getpid()}.{threading.get_ident()}")
        fd = open_private(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, f"{node}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(draft, owner)
        except FileExistsError:
            pass  # another process claimed it first: its name is read below
        finally:
            draft.unlink()
        fsync_dir(owner.parent)
    return owner.read_text(errors="replace").strip()


def listing(live: Path) -> list[LogFile]:
    """Sealed files in chain order, then the live file (unless it is the last sealed file
    under a second name: a seal a crash interrupted)."""
    out = []
    prefix = f"{live.name}."
    try:
        names = sorted(os.listdir(live.parent))
    except FileNotFoundError:
        return []
    for name in names:
        digits = name[len(prefix) :]
        if name.startswith(prefix) and len(digits) == SEAL_DIGITS and digits.isdigit():
            found = _stat(live.with_name(name), int(digits))
            if found:
                out.append(found)
    current = _stat(live, None)
    if current and not (out and out[-1].ident == current.ident):
        out.append(current)
    return out


def _stat(path: Path, first_seq: int | None) -> LogFile | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return LogFile(path, first_seq, (st.st_dev, st.st_ino), st.st_size, st.st_mtime_ns)


def lines_from(
    path: Path, offset: int = 0, before: int = 0, ident: tuple[int, int] | None = None
) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, complete line without its newline) from `offset`; a last
    line without a newline (an append in progress, or torn) is not yielded. With `ident`,
    nothing unless the path still names that file (not sealed and replaced meanwhile)."""
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if ident is not None and (st.st_dev, st.st_ino) != ident:
                return
            f.seek(offset)
            for number, line in enumerate(f, before + 1):
                if line.endswith(b"\n"):
                    yield number, offset, line[:-1]
                offset += len(line)
    except FileNotFoundError:
        return


def parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def last_records(
    fd: int, count: int, accept: Callable[[Any], bool]
) -> tuple[list[dict[str, Any]], int, int]:
    """The last `count` complete lines that parse as accepted records (oldest first; lines
    that do not are passed over, so garbage at the end cannot stop the next append), where
    the complete lines end (bytes to keep), and the file's size. Reads from the end, only as
    far back as it must."""
    size = os.fstat(fd).st_size
    keep = _complete_end(fd, size)
    found: list[dict[str, Any]] = []
    for line in _lines_backward(fd, keep):
        record = parse(line)
        if accept(record):
            found.append(record)  # type: ignore[arg-type]
            if len(found) == count:
                break
    return found[::-1], keep, size


def _complete_end(fd: int, size: int) -> int:
    """The offset just after the last newline (0 when there is none)."""
    pos = size
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        at = os.pread(fd, step, pos).rfind(b"\n")
        if at >= 0:
            return pos + at + 1
    return 0


def _lines_backward(fd: int, end: int) -> Iterator[bytes]:
    """Complete lines before `end` (just after a newline), the last first."""
    pos, rest = end, b""
    while pos > 0:
        step = min(_CHUNK, pos)
        pos -= step
        parts = (os.pread(fd, step, pos) + rest).split(b"\n")
        yield from reversed(parts[1:-1])
        rest = parts[0] + b"\n"
    if rest.strip(b"\n"):
        yield rest[:-1]


def first_line(path: Path) -> bytes | None:
    try:
        with path.open("rb") as f:
            line = f.readline()
    except FileNotFoundError:
        return None
    return line[:-1] if line.endswith(b"\n") else None


def link_sealed(live: Path, target: Path) -> bool:
    """The live file under its sealed name too (False: the name is taken; nothing changes)."""
    try:
        os.link(live, target)  # never replaces: a name taken is a refusal, not a loss
    except FileExistsError:
        return False
    fsync_dir(live.parent)
    return True


def drop_live(live: Path) -> None:
    """The second half of sealing: the live name goes; the next append starts a new file."""
    live.unlink()
    fsync_dir(live.parent)


def finish_sealing(live: Path, fd: int) -> bool:
    """True (and the live name removed) when the open live file is already sealed under its
    other name: a crash came between the link and the unlink."""
    if os.fstat(fd).st_nlink < 2:
        return False
    record = parse(first_line(live) or b"")
    if record is None or type(record.get("seq")) is not int:
        return False
    target = sealed_path(live, record["seq"])
    if not (target.exists() and os.path.samefile(target, live)):
        return False
    drop_live(live)
    return True
