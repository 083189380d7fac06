"""The recorder's pure parts: state edges, backoff, and the ffmpeg command (stream copy only)."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from ccvault.config.model import CameraConfig
from ccvault.host.children import dying_with_this_process
from ccvault.ingest.spool import ListEntry, RunList, read_list, segment_times
from ccvault.recorder.camera import Backoff, SegmentFile
from ccvault.recorder.ffmpeg import recorder_argv
from ccvault.recorder.states import CameraState, IllegalTransition, check_transition
from ccvault.storage import mp4
from tests.conftest import wait_for
from tests.test_live_tail import record


def test_backoff_doubles_to_a_capped_jittered_minute_and_resets() -> None:
    backoff = Backoff(rng=random.Random(7))
    delays = [backoff.next() for _ in range(10)]
    assert 0.8 <= delays[0] <= 1.2
    assert 1.6 <= delays[1] <= 2.4
    assert all(d <= 60 for d in delays) and delays[-1] >= 48
    assert len({round(d, 3) for d in delays[-3:]}) == 3, "jitter spreads reconnect storms"
    backoff.reset()
    assert backoff.next() <= 1.2


def test_state_edges() -> None:
    check_transition(CameraState.CONNECTING, CameraState.RECORDING)
    check_transition(CameraState.OFFLINE, CameraState.RECORDING)
    with pytest.raises(IllegalTransition):
        check_transition(CameraState.DISABLED, CameraState.RECORDING)
    with pytest.raises(IllegalTransition):
        check_transition(CameraState.RECORDING, CameraState.OFFLINE)


def test_recorder_only_copies_video() -> None:
    camera = CameraConfig(name="door", url="rtsp://u:pw@127.0.0.1/s")
    argv = recorder_argv("ffmpeg", camera, camera.url, 60, Path("/spool/door/1"))
    assert argv[argv.index("-c:v") + 1] == "copy"
    assert "-an" in argv
    assert argv[argv.index("-rtsp_transport") + 1] == "tcp"
    with_audio = recorder_argv(
        "ffmpeg",
        camera.model_copy(update={"audio": True}),
        camera.url,
        60,
        Path("/x"),
        audio_codec="pcm_mulaw",
    )
    assert with_audio[with_audio.index("-c:a") + 1] == "aac", "G.711 becomes AAC"
    aac = recorder_argv(
        "ffmpeg",
        camera.model_copy(update={"audio": True}),
        camera.url,
        60,
        Path("/x"),
        audio_codec="aac",
    )
    assert aac[aac.index("-c:a") + 1] == "copy"


def _top_level_boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    found, at = [], 0
    while at < len(data):
        kind, _, size = mp4.header(data, at)
        found.append((kind, data[at : at + size]))
        at += size
    return found


def test_frames_arriving_are_told_by_the_segment_file_gaining_fragments(tmp_path: Path) -> None:
    """A real recorded file written out box by box, as ffmpeg writes it: its header is no
    frames, nor is a header closed by ffmpeg's trailer (a run that ended before its first
    fragment: not a lost segment); each fragment is."""
    boxes = _top_level_boxes(record(tmp_path / "run", 2)[0].read_bytes())
    kinds = [kind for kind, _ in boxes]
    assert kinds[:3] == [b"ftyp", b"moov", b"moof"] and kinds[-1] == b"mfra", kinds
    header, fragments, trailer = boxes[:2], boxes[2:-1], boxes[-1]
    growing = tmp_path / "000000.mp4"
    file = SegmentFile(growing)
    assert not file.grew(), "not opened yet"

    def write(parts: list[tuple[bytes, bytes]]) -> None:
        with open(growing, "ab") as f:
            f.write(b"".join(box for _, box in parts))

    write(header)
    assert not file.grew() and not file.fragments
    ended_early = tmp_path / "000001.mp4"
    ended_early.write_bytes(b"".join(box for _, box in [*header, trailer]))
    assert not SegmentFile(ended_early).grew() and not mp4.holds_fragment(ended_early)
    write(fragments[:2])  # the first moof and its mdat
    assert file.grew() and file.fragments
    assert not file.grew(), "nothing new since the last look"
    write(fragments[2:4])
    assert file.grew()


def test_segment_list_parsing_survives_a_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "segments.csv"
    path.write_text("000000.mp4,0.000000,100.500000\n000001.mp4,100.500000,160.5\n000002.mp4,16")
    assert read_list(path) == [
        ListEntry("000000.mp4", 0, 100_500),
        ListEntry("000001.mp4", 100_500, 160_500),
    ]
    # The first segment of a run is listed from 0: its start is its end minus its length.
    assert segment_times(ListEntry("a", 0, 100_500), 2_000) == (98_500, 100_500)
    assert segment_times(ListEntry("b", 100_500, 160_500), 60_010) == (100_500, 160_500)
    # A listed length the file contradicts is not trusted.
    assert segment_times(ListEntry("c", 100_500, 160_500), 30_000) == (100_500, 130_500)


def test_a_run_list_read_as_it_grows_gives_every_complete_line_once(tmp_path: Path) -> None:
    """Ingest reads each run's list from where it stopped: a line still being written waits
    for its newline, and what was read is neither lost nor repeated."""
    path = tmp_path / "segments.csv"
    listed = RunList()
    assert listed.read(path) == []  # no list yet
    path.write_text("000000.mp4,0.000000,10.0\n000001.mp4,10.0,2")
    assert listed.read(path) == [ListEntry("000000.mp4", 0, 10_000)]
    with path.open("a") as f:
        f.write("0.0\n000002.mp4,20.0,30.0\n")
    assert listed.read(path) == read_list(path)
    assert [e.name for e in listed.read(path)] == ["000000.mp4", "000001.mp4", "000002.mp4"]


class SteppingClock:
    """Monotonic time runs on; the wall clock can be stepped like NTP or an operator would."""

    def __init__(self) -> None:
        self.mono = 1000.0
        self.offset_ms = 1_790_000_000_000

    def wall_ms(self) -> int:
        return self.offset_ms + int(self.mono * 1000)

    def monotonic(self) -> float:
        return self.mono


def test_a_wall_clock_step_restarts_every_recording_run(tmp_path: Path) -> None:
    from ccvault.config.model import Config
    from ccvault.recorder.supervisor import Supervisor

    config = Config.model_validate(
        {
            "storage": {
                "catalog": str(tmp_path / "c.sqlite"),
                "volumes": [{"name": "hot", "path": str(tmp_path / "hot")}],
            },
            "cameras": [{"name": "a", "url": "demo://"}, {"name": "b", "url": "demo://"}],
        }
    )
    clock = SteppingClock()
    supervisor = Supervisor(config, tmp_path / "spool", clock, lambda *_: None)
    restarted: list[str] = []
    for name, recorder in supervisor.recorders.items():
        recorder.restart = lambda reason, name=name: restarted.append(name)  # type: ignore[method-assign]
    clock.mono += 0.5
    supervisor._check_clock()
    assert restarted == [], "time passing is not a step"
    clock.offset_ms -= 3_600_000  # the wall clock goes back an hour
    supervisor._check_clock()
    assert restarted == ["a", "b"]


def test_one_thread_reads_every_recorders_output() -> None:
    """The supervisor's `OutputPump` reads all the recorders' ffmpeg output on one thread:
    every line of every process arrives, in order, the last one even without its newline; a
    process's streams are closed when it ends; a handler that raises silences no one."""
    from ccvault.recorder.pump import OutputPump

    pump = OutputPump()
    threads_before = threading.active_count()
    script = 'for i in $(seq 1 200); do echo "frame=$i"; done; printf "end"'
    procs = [
        subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(24)
    ]
    got: list[list[str]] = [[] for _ in procs]
    for proc, lines in zip(procs, got, strict=True):
        pump.add(proc.stdout, lines.append)
        pump.add(proc.stderr, lines.append)
    bad = subprocess.Popen(
        ["sh", "-c", "echo boom >&2; echo ok"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    pump.add(bad.stderr, lambda line: 1 / 0)  # a handler that fails
    late: list[str] = []
    pump.add(bad.stdout, late.append)
    assert threading.active_count() <= threads_before + 1
    expected = [f"frame={i}" for i in range(1, 201)] + ["end"]
    wait_for(lambda: all(lines == expected for lines in got) and late == ["ok"], 30, what="all")
    for proc in [*procs, bad]:
        proc.wait()
    wait_for(lambda: pump.streams() == 0, 10, what="every ended stream forgotten")
    assert all(p.stdout.closed and p.stderr.closed for p in [*procs, bad])


HELD_AT_FORK = threading.Lock()  # what a thread of the daemon holds while another one forks


def _child_waits_for_held_lock() -> None:
    """Python code run in a forked child before its exec waits here, as on any lock another
    thread held at the fork; it gives up after a while (exit 97) so a failing test ends."""
    if HELD_AT_FORK.locked() and not HELD_AT_FORK.acquire(timeout=5):
        os._exit(97)


os.register_at_fork(after_in_child=_child_waits_for_held_lock)


def test_a_recorder_starts_whatever_other_threads_hold_when_it_forks(tmp_path: Path) -> None:
    """No Python runs between the fork and the exec of a recorder or its feeder: the forked
    copy of the threaded daemon would wait forever on a lock another thread held at the fork,
    and the supervisor's loop with it, inside Popen (CPython runs its at-fork handlers in the
    child whenever a `preexec_fn` is given; this test's handler stands for any such lock)."""
    from ccvault.config.model import Config
    from ccvault.recorder.supervisor import Supervisor

    config = Config.model_validate(
        {
            "storage": {
                "catalog": str(tmp_path / "c.sqlite"),
                "volumes": [{"name": "hot", "path": str(tmp_path / "hot")}],
            },
            "cameras": [{"name": "a", "url": "demo://?width=160&height=90"}],
        }
    )
    recorder = Supervisor(config, tmp_path / "spool", SteppingClock(), lambda *_: None).recorders[
        "a"
    ]

    def execed(proc: subprocess.Popen[bytes]) -> bool:
        return psutil.Process(proc.pid).cmdline()[0] == recorder.ffmpeg

    with HELD_AT_FORK:
        recorder.tick()  # starts the feeder and the recorder
    procs = [recorder._proc, recorder._feeder]
    try:
        for proc in procs:
            assert proc is not None
            wait_for(lambda p=proc: p.poll() is not None or execed(p), 10, what="its exec")
            assert proc.poll() is None, f"exited {proc.returncode} before its exec"
    finally:
        recorder.stop(time.monotonic() + 10)


def test_a_child_whose_parent_died_before_its_signal_was_set_does_not_run(
    tmp_path: Path,
) -> None:
    """The parent-death signal is set in the child: a parent already gone sent nothing, so
    the child runs the program only while its parent is still this process."""
    ran = tmp_path / "ran"
    argv = dying_with_this_process(["touch", str(ran)])
    # Started by a shell instead of this process: its parent is not the one it was made for.
    subprocess.run(["/bin/sh", "-c", '"$@"; true', "sh", *argv], check=True)
    assert not ran.exists()
    subprocess.run(argv, check=True)
    assert ran.exists()
