"""People counting: accuracy on hand-labelled real footage (Debian's opencv-doc vtest.avi),
no false people in an empty scene, and the small pieces the count depends on."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ccvault.motion import people
from ccvault.motion.people import PeopleCounter, PeopleSettings, SpanPeople, suppress

LABELS = Path(__file__).parent / "data" / "people" / "vtest_labels.json"
# The first half of the labelled frames (0-384, 25 keyframes 1.6 s apart): ~3 s of CPU.
FIRST_HALF = 25
GOAL_MAE = 0.5


def _labels() -> dict:
    return json.loads(LABELS.read_text())


def _vtest_frames(wanted: list[int]) -> list[np.ndarray]:
    source = Path(_labels()["source"])
    if not source.exists():
        pytest.skip(f"{source} is missing (Debian package opencv-doc not installed)")
    capture = cv2.VideoCapture(str(source))
    want, out, index = set(wanted), [], 0
    while len(out) < len(wanted):
        ok, frame = capture.read()
        assert ok, f"{source} ended at frame {index}"
        if index in want:
            out.append(frame)
        index += 1
    return out


def test_labels_are_small_and_consistent() -> None:
    doc = _labels()
    assert LABELS.stat().st_size < 8192
    assert len(doc["frames"]) >= 40
    assert all(0 <= n <= 20 for n in doc["frames"].values())
    assert set(doc["small"]) <= set(doc["frames"])


def test_counts_labelled_vtest_frames_within_goal() -> None:
    doc = _labels()
    indices = sorted(int(k) for k in doc["frames"])[:FIRST_HALF]
    frames = _vtest_frames(indices)
    counter = PeopleCounter()
    span = SpanPeople()
    for index, frame in zip(indices, frames, strict=True):
        span.add(counter.count(frame, index * 100).count)
    truth = np.array([doc["frames"][str(i)] for i in indices])
    raw = np.abs(np.array(span.counts) - truth).mean()
    smoothed = np.abs(np.array(span.smoothed()) - truth).mean()
    assert smoothed <= GOAL_MAE, (span.counts, truth.tolist())
    assert raw <= 2 * GOAL_MAE, (span.counts, truth.tolist())
    assert span.people_max == pytest.approx(truth.max(), abs=1)


def test_vtest_background_has_nobody() -> None:
    """The square without its pedestrians (median over the video) holds none, also when the
    whole frame is scanned ungated (a cold start: the parked van is HOG's favourite)."""
    frames = _vtest_frames(list(range(0, 795, 80)))
    empty = np.median(np.stack(frames), axis=0).astype(np.uint8)
    counter = PeopleCounter()
    counts = [counter.count(empty, t * 1600).count for t in range(6)]
    assert counts[people.PeopleSettings().background_min_frames :] == [0] * 3


def _server_room(rng: np.random.Generator) -> np.ndarray:
    """A synthetic empty server room: a wall, three racks with LED rows, sensor noise."""
    room = np.full((576, 768), 90, np.uint8)
    room[400:] = 60  # floor
    for x in (80, 320, 560):
        room[100:460, x : x + 130] = 30
        for y in range(120, 440, 24):
            room[y : y + 6, x + 10 : x + 120] = 150
            room[y + 2 : y + 4, x + 100 : x + 104] = 250  # LEDs
    noise = rng.normal(0, 3, room.shape)
    return np.clip(room + noise, 0, 255).astype(np.uint8)


def test_empty_room_counts_zero() -> None:
    rng = np.random.default_rng(7)
    counter = PeopleCounter()
    counts = [counter.count(_server_room(rng), t * 1000) for t in range(6)]
    assert [c.count for c in counts] == [0] * 6
    assert not counts[0].gated and counts[-1].gated


def test_observe_seeds_the_background() -> None:
    rng = np.random.default_rng(3)
    counter = PeopleCounter()
    for t in range(3):
        counter.observe(_server_room(rng), t * 1000)
    assert counter.count(_server_room(rng), 3000).gated


def test_suppress_keeps_neighbours_and_drops_nested_boxes() -> None:
    rects = [(100, 100, 48, 96), (150, 100, 48, 96), (110, 120, 30, 60), (98, 96, 56, 110)]
    scores = [2.0, 1.5, 1.8, 1.0]
    assert sorted(suppress(rects, scores, 0.65)) == [0, 1]


def test_span_people_median_of_three() -> None:
    span = SpanPeople()
    for count in (2, 2, 7, 2, 3, 3, 0):
        span.add(count)
    assert span.smoothed() == [2, 2, 2, 3, 3, 3, 0]
    assert span.people_max == 3
    assert SpanPeople().people_max == 0


def test_missing_hog_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(cv2, "HOGDescriptor")
    with pytest.raises(people.HogMissing, match="opencv-contrib-python-headless"):
        PeopleCounter(PeopleSettings())


def test_imported_footage_of_a_rooms_camera_gets_people_counts(tmp_path: Path) -> None:
    """Real pedestrians (vtest.avi, as H.264 with a keyframe a second) imported into a camera
    that watches a room: its motion spans carry people_max, and `motion --min-people` finds
    them; a camera of no room is not counted."""
    source = Path(_labels()["source"])
    if not source.exists():
        pytest.skip(f"{source} is missing (Debian package opencv-doc not installed)")
    import subprocess

    from tests.conftest import cli_json, run_cli, write_config
    from tests.peers import ffmpeg_exe

    clip = tmp_path / "hall.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-loglevel",
            "error",
            "-i",
            str(source),
            "-t",
            "30",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "10",
            "-bf",
            "0",
            "-pix_fmt",
            "yuv420p",
            str(clip),
        ],
        check=True,
    )
    config = write_config(
        tmp_path,
        [
            {"name": "room-cam", "url": "demo://", "enabled": False},
            {"name": "hall", "url": "demo://", "enabled": False},
        ],
    )
    config.write_text(
        config.read_text() + '\n[[access.rooms]]\nname = "sr"\ncameras = ["room-cam"]\n'
    )
    for camera in ("room-cam", "hall"):
        done = run_cli(config, "import", "--camera", camera, "--start", "-1h", str(clip))
        assert done.returncode == 0, done.stderr
    spans = cli_json(config, "motion", "--camera", "room-cam", "--from", "-2h", "--to", "now")
    assert spans and max(s["people_max"] or 0 for s in spans) >= 4, spans
    crowded = cli_json(
        config,
        "motion",
        "--camera",
        "room-cam",
        "--from",
        "-2h",
        "--to",
        "now",
        "--min-people",
        "4",
    )
    assert crowded and all(s["people_max"] >= 4 for s in crowded)
    hall = cli_json(config, "motion", "--camera", "hall", "--from", "-2h", "--to", "now")
    assert hall and all(s["people_max"] is None for s in hall)
