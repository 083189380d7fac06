"""The daemon: the composition root that builds every part, its scheduled jobs, and the
Prometheus metrics that observe them all."""
