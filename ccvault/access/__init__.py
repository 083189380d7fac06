"""Access control joined to the cameras: door events in (HTTP, MQTT, a followed file), the
visits and occupancy they make, the room's rules, and what retention and evidence take from
them. What decides is pure (`events`, `visits`, `rules`); what acts is thin."""
