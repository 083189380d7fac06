"""Motion analysis: accuracy on the labelled scene set per mode, each setting's effect,
carry across consecutive segments, and the `ccvault analyze` command."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import pytest

from ccvault.catalog.rows import Span
from ccvault.config.policy import MotionSettings
from ccvault.motion.analysis import Carry, analyze, finish
from tests.conftest import run_cli
from tests.motion_scenes import Mover, Scene, ensure, render, scene_set, score
from tests.peers import ffmpeg_exe, make_clip

LEFT, RIGHT = (0.04, 0.6), (0.96, 0.6)


def spans_of(path: Path, **settings: object) -> list[Span]:
    result = analyze(path, MotionSettings.model_validate(settings))
    return result.spans + finish(result.carry)


def motion(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.kind == "motion"]


# The labelled scenes take a while to render: the tests on them are marked slow.
@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Scene, Path]]:
    paths = ensure(scene_set(), tmp_path_factory.mktemp("scenes"))
    return [(scene, paths[scene.name]) for scene in scene_set()]


@pytest.fixture(scope="module")
def one_crossing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scene = Scene("crossing", 12, (Mover(3.4, 7.6, LEFT, RIGHT),))
    return render(scene, tmp_path_factory.mktemp("clips") / "crossing.mp4")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["auto", "keyframes", "all"])
def test_accuracy_on_labelled_scenes(scenes: list[tuple[Scene, Path]], mode: str) -> None:
    result = score([(scene, spans_of(path, mode=mode)) for scene, path in scenes])
    assert result.recall >= 0.98
    assert result.false_fraction <= 0.01, result.false_s
    assert result.lighting_misses == []
    if mode != "keyframes":
        assert result.max_start_error <= 1.0, result.start_errors


@pytest.mark.slow
def test_lights_on_is_lighting_not_motion(scenes: list[tuple[Scene, Path]]) -> None:
    scene, path = next((s, p) for s, p in scenes if s.lights_on is not None)
    for mode in ("auto", "all"):
        spans = spans_of(path, mode=mode)
        near = [s for s in spans if abs(s.start_ms / 1000 - scene.lights_on) < 2]
        assert [s.kind for s in near] == ["lighting"], spans
        ignored = spans_of(path, mode=mode, lighting="ignore")
        assert [s for s in ignored if s.kind == "lighting"] == []
        assert motion(ignored) == motion(spans)


@pytest.mark.slow
def test_auto_falls_back_to_every_frame_on_long_gops(scenes: list[tuple[Scene, Path]]) -> None:
    path = next(p for s, p in scenes if s.keyint_s > 2)
    assert analyze(path, MotionSettings(mode="auto")).mode == "all"


def test_mode_decides_what_is_decoded(one_crossing: Path) -> None:
    frames = {
        mode: analyze(one_crossing, MotionSettings(mode=mode))
        for mode in ("auto", "keyframes", "all")
    }
    assert frames["keyframes"].frames_decoded == frames["keyframes"].keyframes == 12
    assert frames["all"].frames_decoded == 120
    assert 12 < frames["auto"].frames_decoded < 60
    assert {a.mode for a in frames.values()} == {"auto", "keyframes", "all"}


def test_threshold(tmp_path: Path) -> None:
    # A dim room (gain 0.3): the box differs from the wall behind it by at most ~30 luma.
    faint = Scene("faint", 8, (Mover(2.3, 6.0, LEFT, RIGHT, luma=100),), drift=(0.3, 0.3))
    path = render(faint, tmp_path / "faint.mp4")
    assert motion(spans_of(path, threshold=8, mode="all"))
    assert not motion(spans_of(path, threshold=40, mode="all"))


@pytest.mark.slow
def test_min_area(scenes: list[tuple[Scene, Path]]) -> None:
    path = next(p for s, p in scenes if s.name == "corner")
    assert motion(spans_of(path))
    assert not motion(spans_of(path, min_area=0.02))


def test_min_seconds(tmp_path: Path) -> None:
    quick = Scene("quick", 8, (Mover(3.2, 4.0, LEFT, RIGHT),))
    path = render(quick, tmp_path / "quick.mp4")
    assert motion(spans_of(path, mode="all", min_seconds=0.5))
    assert not motion(spans_of(path, mode="all", min_seconds=2))


def test_merge_gap(tmp_path: Path) -> None:
    twice = Scene("twice", 12, (Mover(2.2, 4.4, LEFT, RIGHT), Mover(6.4, 8.8, RIGHT, LEFT)))
    path = render(twice, tmp_path / "twice.mp4")
    assert len(motion(spans_of(path, mode="all", merge_gap_seconds=0.5))) == 2
    assert len(motion(spans_of(path, mode="all", merge_gap_seconds=4))) == 1


def test_masks(one_crossing: Path) -> None:
    lower_band = [[(0, 0.3), (1, 0.3), (1, 1), (0, 1)]]
    assert motion(spans_of(one_crossing))
    assert not motion(spans_of(one_crossing, masks=lower_band))
    assert motion(spans_of(one_crossing, masks=[[(0, 0), (0.3, 0), (0.3, 0.3)]]))


@pytest.mark.parametrize("mode", ["auto", "all"])
def test_carry_joins_spans_across_segments(tmp_path: Path, mode: str) -> None:
    scene = Scene("cut", 16, (Mover(5.3, 11.6, LEFT, RIGHT),), keyint_s=1.0)
    first, second = cut(render(scene, tmp_path / "cut.mp4"), 8, tmp_path)
    settings = MotionSettings(mode=mode)
    one = analyze(first, settings, start_ms=0)
    assert motion(one.spans) == []  # still moving at the cut: open, in the carry
    carry = pickle.loads(pickle.dumps(one.carry))
    two = analyze(second, settings, start_ms=8000, carry=carry)
    spans = motion(two.spans + finish(two.carry))
    assert len(spans) == 1
    assert abs(spans[0].start_ms - 5300) <= 1000 and abs(spans[0].end_ms - 11600) <= 1500


@pytest.mark.parametrize("mode", ["auto", "all"])
def test_segment_start_is_not_motion(tmp_path: Path, mode: str) -> None:
    scene = Scene("early", 16, (Mover(1.3, 4.1, LEFT, RIGHT),), keyint_s=1.0, drift=(1, 0.8))
    first, second = cut(render(scene, tmp_path / "early.mp4"), 8, tmp_path)
    settings = MotionSettings(mode=mode)
    one = analyze(first, settings)
    assert len(motion(one.spans)) == 1
    assert spans_with(second, settings, one.carry) == []
    assert spans_with(second, settings, None) == []


def spans_with(path: Path, settings: MotionSettings, carry: Carry | None) -> list[Span]:
    result = analyze(path, settings, start_ms=8000, carry=carry)
    return result.spans + finish(result.carry)


def cut(path: Path, at_s: int, folder: Path) -> tuple[Path, Path]:
    """Two files cut at the keyframe at `at_s`, by stream copy as the recorder cuts."""
    pattern = folder / "part%d.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(path),
            "-c",
            "copy",
            "-f",
            "segment",
            "-segment_times",
            str(at_s),
            "-reset_timestamps",
            "1",
            str(pattern),
        ],
        check=True,
    )
    return folder / "part0.mp4", folder / "part1.mp4"


def test_cli_analyze_json_without_config(one_crossing: Path, tmp_path: Path) -> None:
    res = run_cli(None, "analyze", str(one_crossing), "--json", env={"CCVAULT_CONFIG": ""})
    assert res.returncode == 0, res.stderr
    spans = json.loads(res.stdout)
    assert [s["kind"] for s in spans] == ["motion"]
    assert set(spans[0]) == {"start_s", "end_s", "peak", "area", "kind"}
    assert abs(spans[0]["start_s"] - 3.4) < 1


def test_cli_analyze_camera_settings_and_debug_video(one_crossing: Path, tmp_path: Path) -> None:
    from tests.conftest import write_config

    config = write_config(tmp_path, [{"name": "cam1", "url": "rtsp://127.0.0.1:1/x"}])
    with config.open("a") as f:
        f.write("\n[cameras.motion]\nmasks = [[[0, 0.3], [1, 0.3], [1, 1], [0, 1]]]\n")
    masked = run_cli(config, "analyze", str(one_crossing), "--camera", "cam1", "--json")
    assert masked.returncode == 0, masked.stderr
    assert json.loads(masked.stdout) == []
    video = tmp_path / "debug.mp4"
    plain = run_cli(config, "analyze", str(one_crossing), "--debug-video", str(video))
    assert plain.returncode == 0, plain.stderr
    assert "motion" in plain.stdout and video.stat().st_size > 1000
    missing = run_cli(config, "analyze", str(one_crossing), "--camera", "nope")
    assert missing.returncode == 3


def test_cli_analyze_reads_the_motion_table_alone(one_crossing: Path, tmp_path: Path) -> None:
    """Without --camera, analyze validates [motion] and nothing else of the file: its keys
    apply and a wrong one is named, while a table it does not use cannot stop it."""
    from tests.conftest import write_config

    config = write_config(tmp_path, [])
    with config.open("a") as f:
        f.write('\n[motion]\nmode = "keyframes"\n\n[retention]\nno_such_key = 1\n')
    assert run_cli(config, "check-config").returncode == 2  # the daemon would refuse it
    res = run_cli(config, "analyze", str(one_crossing))
    assert res.returncode == 0, res.stderr
    assert "mode keyframes" in res.stderr and "motion" in res.stdout
    config.write_text(config.read_text().replace('mode = "keyframes"', 'mode = "sometimes"'))
    bad = run_cli(config, "analyze", str(one_crossing), "--json")
    assert bad.returncode == 2 and bad.stdout == ""
    assert "motion.mode" in bad.stderr, bad.stderr


def test_cli_analyze_unreadable_file(one_crossing: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(one_crossing.read_bytes()[:20_000])
    for path in (garbage, truncated):
        res = run_cli(None, "analyze", str(path), env={"CCVAULT_CONFIG": ""})
        assert res.returncode == 2
        assert "Traceback" not in res.stderr and res.stderr.startswith("ccvault: error:")


def test_cli_analyze_loads_the_analysis_not_the_daemon(one_crossing: Path, tmp_path: Path) -> None:
    """`ccvault analyze` runs once per file and bench/motion.py weighs the whole process
    against a bare decode: it imports the analysis and the config it reads, not the daemon,
    the API, the catalog or the other commands — and its answer is the library's."""
    from ccvault.cli.motion_cmds import relative_span_json
    from tests.conftest import CCVAULT, write_config

    config = write_config(tmp_path, [])
    loaded = tmp_path / "modules.txt"
    # analyze exits without the interpreter's teardown (os._exit): the modules are listed then
    probe = (
        "import os, runpy, sys; exit_now = os._exit; "
        f"os._exit = lambda code: (open({str(loaded)!r}, 'w').write('\\n'.join(sys.modules)), "
        "exit_now(code)); "
        "sys.argv = ['ccvault', *sys.argv[1:]]; runpy.run_module('ccvault', run_name='__main__')"
    )
    argv = [CCVAULT[0], "-c", probe, "--config", str(config), "analyze", str(one_crossing)]
    res = subprocess.run([*argv, "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    modules = set(loaded.read_text().split("\n"))
    heavy = {"fastapi", "uvicorn", "psutil", "structlog", "ccvault.catalog.writer"}
    heavy.add("ccvault.config.model")  # its [motion] table alone is read and validated
    packages = ("ccvault.api", "ccvault.service", "ccvault.retention", "ccvault.evidence")
    assert modules & heavy == set()
    assert not [m for m in modules if m.startswith(packages)]
    assert "ccvault.motion.analysis" in modules
    expected = [
        relative_span_json(s) for s in sorted(spans_of(one_crossing), key=lambda s: s.start_ms)
    ]
    assert json.loads(res.stdout) == expected


def test_cli_analyze_logs_a_damaged_file_on_stderr(tmp_path: Path) -> None:
    """analyze loads its logging only when it logs (a damaged file's decode errors): the
    event still goes to stderr as a JSON line, and stdout stays the spans' JSON alone."""
    data = bytearray(make_clip(tmp_path / "clip.mp4", 10, keyint_s=1.0).read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 4000, 7):
        data[i] ^= 0xFF
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    res = run_cli(None, "analyze", str(damaged), "--json", env={"CCVAULT_CONFIG": ""})
    assert res.returncode == 0, res.stderr
    assert isinstance(json.loads(res.stdout), list)
    events = [json.loads(line) for line in res.stderr.splitlines()]
    assert [(e["event"], e["level"]) for e in events] == [("motion.decode_errors", "warning")]
