"""Motion analysis of recorded footage: spans of motion and lighting changes per file.

`analysis.analyze` is what the daemon's `scheduler` and `ccvault analyze` call; its `Carry`
lets consecutive segments of a camera continue one background and one span; `finish` closes
what is still open. Importing this package imports nothing heavy (OpenCV, PyAV): commands that
do not analyse stay quick to start.
"""
