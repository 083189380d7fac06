"""Policies a camera inherits and may override key by key: how motion is found ([motion],
[cameras.motion]) and how long footage is kept ([retention], [cameras.retention])."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from ccvault.config.fields import ByteSize, Model, Polygon, describe, override_of
from ccvault.config.file import read_toml
from ccvault.errors import ConfigError


class MotionSettings(Model):
    """How motion is found in one camera's footage; [motion] sets them for all cameras and
    [cameras.motion] overrides them field by field (a camera's masks replace the global ones)."""

    enabled: bool = Field(True, description="Analyse this footage for motion.")
    mode: Literal["auto", "keyframes", "all"] = Field(
        "auto",
        description="auto: keyframes first, then full decoding at the edges of each hit, when "
        "keyframes are at most 2 s apart, every frame otherwise; keyframes: keyframes only; "
        "all: every frame.",
    )
    threshold: int = Field(
        25, ge=1, le=255, description="Luma difference (0-255) that makes a pixel 'changed'."
    )
    min_area: float = Field(
        0.002,
        ge=0.0,
        le=1.0,
        description="Smallest moving region that counts, as a fraction of the frame.",
    )
    min_seconds: float = Field(
        0.5, ge=0.0, le=60.0, description="Shorter activity is not reported."
    )
    merge_gap_seconds: float = Field(
        3.0, ge=0.0, le=600.0, description="Hits closer than this are one span."
    )
    pre_seconds: float = Field(
        5.0,
        ge=0.0,
        le=600.0,
        description="Footage kept as activity before a span starts (retention padding).",
    )
    post_seconds: float = Field(
        10.0,
        ge=0.0,
        le=600.0,
        description="Footage kept as activity after a span ends (retention padding).",
    )
    masks: list[Polygon] = Field(
        default_factory=list,
        description="Polygons to ignore (rack LEDs, a wall clock, a window), in relative "
        "0-1 coordinates [[x, y], ...].",
    )
    lighting: Literal["event", "ignore"] = Field(
        "event",
        description="A change over most of the frame at once (lights switched on): 'event' "
        "records a lighting span (activity for retention, not motion); 'ignore' drops it.",
    )

    people: bool | None = Field(
        None,
        description="Count people on the keyframes of motion spans (people_max per span; "
        "OpenCV's HOG people detector, on the CPU). Default: on for the cameras of an "
        "[[access.rooms]] room, off elsewhere.",
        json_schema_extra={"default_text": "cameras of an [[access.rooms]] room"},
    )


class MotionConfig(MotionSettings):
    workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Analysis processes, at lower CPU priority than recording: they use only "
        "what recording and ingest leave.",
        json_schema_extra={"default_text": "one per CPU"},
    )

    def settings(self, override: dict[str, Any], counts_people: bool) -> MotionSettings:
        """What one camera's footage is analysed with: these keys, the camera's own laid over
        them (`override`), people counted by default where `counts_people`."""
        merged = self.model_dump(exclude={"workers"})
        merged.update(override)
        if merged["people"] is None:
            merged["people"] = counts_people
        return MotionSettings.model_validate(merged)


class MotionTable(Model):
    """A config file's [motion] table alone, the rest of the file not looked at."""

    model_config = ConfigDict(extra="ignore")
    motion: MotionConfig = Field(default_factory=MotionConfig)  # type: ignore[arg-type]


def motion_of_file(path: Path) -> MotionSettings:
    """The global [motion] settings of a config file, validated by the same model as in a
    whole `Config` (`Config.motion_for(None)` gives the same), without the rest of the file:
    validating every table and checking the machine (secrets, reserves, volumes) is most of
    `ccvault analyze`'s start-up, for settings it does not use."""
    try:
        table = MotionTable.model_validate(read_toml(path))
    except ValidationError as exc:
        raise ConfigError(str(path), describe(exc)) from None
    return table.motion.settings({}, counts_people=False)


MotionOverride = override_of(MotionSettings, "MotionOverride")


class RetentionSettings(Model):
    """How long footage is kept; [retention] sets it for all cameras and [cameras.retention]
    overrides it key by key. Windows count from a segment's end, the ceiling from its start."""

    continuous_days: float = Field(
        14.0, gt=0, le=3650, description="Keep idle footage (no activity) this long."
    )
    motion_days: float = Field(
        31.0,
        gt=0,
        le=3650,
        description="Keep footage whose padded range overlaps activity this long.",
    )
    max_days: float = Field(
        31.0,
        gt=0,
        le=3650,
        description="Privacy ceiling: nothing older survives except under hold or export pin.",
    )
    min_days: float = Field(
        7.0,
        ge=0,
        le=3650,
        description="The promise: footage younger than this is deleted only under disk "
        "pressure, with a premature_deletion alert.",
    )
    max_bytes: ByteSize | None = Field(
        None, description="Per-camera quota; the oldest footage past min_days goes first."
    )
    hot_days: float = Field(
        7.0,
        ge=0,
        le=3650,
        description="Footage older than this moves from hot volumes to an archive volume.",
    )
    thin_after_days: float = Field(
        0.0,
        ge=0,
        le=3650,
        description="Idle footage older than this is rewritten keyframes-only (stream copy); "
        "0 = off.",
    )
    pressure_floor_hours: float = Field(
        24.0,
        ge=0,
        le=87_600,
        description="Disk pressure never deletes or thins a camera's newest this-many hours of "
        "footage (counted back from its newest segment), not even inside min_days: when only "
        "that, held footage and other programs' data are left, the volume is volume_low "
        "(critical) and new footage goes to another volume. 0 = no floor.",
    )

    access_days: float | None = Field(
        None,
        gt=0,
        le=3650,
        description="Keep footage of the rooms' visits (from [access] padding_seconds before "
        "an entry to after the exit, on the room's cameras) this long after the visit; "
        "between motion_days and max_days. Unset: visits keep nothing longer.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> RetentionSettings:
        if self.continuous_days > self.motion_days:
            raise ValueError(
                "continuous_days: must not exceed motion_days "
                f"({self.continuous_days} > {self.motion_days})"
            )
        if self.motion_days > self.max_days:
            raise ValueError(
                f"motion_days: must not exceed max_days ({self.motion_days} > {self.max_days})"
            )
        if self.min_days > self.continuous_days:
            raise ValueError(
                f"min_days: must not exceed continuous_days "
                f"({self.min_days} > {self.continuous_days})"
            )
        if self.pressure_floor_hours > self.max_days * 24:
            raise ValueError(
                f"pressure_floor_hours: must not exceed max_days ({self.pressure_floor_hours:g} h "
                f"> {self.max_days * 24:g} h): nothing is kept past the ceiling"
            )
        if self.access_days is not None and not (
            self.motion_days <= self.access_days <= self.max_days
        ):
            raise ValueError(
                f"access_days: must be between motion_days and max_days ({self.motion_days} ≤ "
                f"{self.access_days} ≤ {self.max_days} is false)"
            )
        if self.thin_after_days and self.thin_after_days >= self.continuous_days:
            raise ValueError(
                "thin_after_days: must be below continuous_days, or idle "
                "footage is deleted before it is thinned"
            )
        return self


RetentionOverride = override_of(RetentionSettings, "RetentionOverride")
