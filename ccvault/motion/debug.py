"""A video of what the detector saw, so masks and thresholds can be tuned by looking.

Drawn on the small luma frames the detector works on (scaled 2x): masked areas tinted red,
changed pixels green, the moving box yellow, and the frame's numbers as text.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from ccvault.config.policy import MotionSettings
from ccvault.motion.detector import Detector, FrameResult, watch_raster

SCALE = 2
_RED, _GREEN, _YELLOW, _WHITE = (0, 0, 200), (0, 220, 0), (0, 230, 230), (255, 255, 255)


class DebugVideo:
    """H.264 MP4 writer; the stream is set up on the first frame, when the size is known."""

    def __init__(self, path: Path, settings: MotionSettings, rate: Fraction | int) -> None:
        self.settings = settings
        self.rate = Fraction(rate).limit_denominator(1001)
        self.output = av.open(str(path), "w")
        self.stream: av.VideoStream | None = None
        self.count = 0

    def __enter__(self) -> DebugVideo:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.stream is not None:
            self.output.mux(self.stream.encode(None))
        self.output.close()

    def frame(self, img: np.ndarray, result: FrameResult, detector: Detector) -> None:
        picture = self._draw(img, result, detector)
        if self.stream is None:
            self.stream = self._open_stream(picture.shape[1], picture.shape[0])
        frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
        frame.pts = self.count
        self.count += 1
        self.output.mux(self.stream.encode(frame))

    def _open_stream(self, width: int, height: int) -> av.VideoStream:
        stream = self.output.add_stream("libx264", rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = 1 / self.rate
        stream.options = {"preset": "veryfast", "crf": "28"}
        return stream

    def _draw(self, img: np.ndarray, result: FrameResult, detector: Detector) -> np.ndarray:
        picture = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        masked = watch_raster(self.settings, img.shape) == 0
        picture[masked] = (picture[masked] * 0.5 + np.array(_RED) * 0.5).astype(np.uint8)
        if detector.changed is not None:
            picture[detector.changed > 0] = _GREEN
        height, width = img.shape
        picture = cv2.resize(
            picture, (width * SCALE, height * SCALE), interpolation=cv2.INTER_NEAREST
        )
        if result.moving:
            x0, y0, x1, y1 = result.bbox
            cv2.rectangle(
                picture,
                (round(x0 * width * SCALE), round(y0 * height * SCALE)),
                (round(x1 * width * SCALE), round(y1 * height * SCALE)),
                _YELLOW,
                2,
            )
        cv2.putText(
            picture, _label(result), (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _WHITE, 1, cv2.LINE_AA
        )
        return picture


def _label(result: FrameResult) -> str:
    state = "LIGHTING" if result.lighting else "MOTION" if result.moving else "quiet"
    return f"{result.t_ms / 1000:8.2f}s  {state}  score {result.score:.3f}  area {result.area:.4f}"
