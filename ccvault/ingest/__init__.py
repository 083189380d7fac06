"""Footage into the store: finished segments from the recorders' spool, imported files, and
reconcile, which makes catalog and disks agree after a crash or a manual change."""
