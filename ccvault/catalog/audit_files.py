"""The audit log's files: the live one (`audit.jsonl`) and the files sealed by rotation, named
by their first record's seq (`audit.jsonl.000000000001`, twelve digits) so that sorting the
names is walking the chain; and the checkpoints beside them (`audit.jsonl.checkpoints`).

Sealing is crash-safe without a rename that could replace anything: the live file is
hard-linked to its sealed name, the directory fsynced, then the live name unlinked. A crash in
between leaves one inode under both names, which `listing` reads once and the next append
finishes (`finish_sealing`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccvault.host.durable import fsync_dir

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


def last_lines(fd: int, count: int) -> tuple[list[bytes], int, int]:
    """The last `count` complete lines, where the complete lines end (bytes to keep), and the
    file's size — reading only the end of the file."""
    size = os.fstat(fd).st_size
    buf, start = b"", size
    while start > 0 and buf.count(b"\n") <= count:
        step = min(_CHUNK, start)
        start -= step
        buf = os.pread(fd, step, start) + buf
    end = buf.rfind(b"\n")
    if end < 0:
        return [], start, size
    complete = buf[: end + 1].split(b"\n")[:-1]
    if start > 0:
        complete = complete[1:]  # the first may be a line's end only
    return complete[-count:], start + end + 1, size


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
