"""Where footage lies: volumes and their identity, the segment store, media probing and
hashing, clips, keyframe thinning and the background re-hash (scrub)."""
