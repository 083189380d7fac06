"""ccvault: records camera streams into an indexed, crash-safe segment store."""

__version__ = "0.1.0"
