-- Evidence of a visit (issue 15): one export of the visit's room's cameras, with its door events.
-- NULL for an export of one camera's range.
ALTER TABLE exports ADD COLUMN visit_id INTEGER;
-- The cameras a visit's export holds, as a JSON list (its room's when it was asked for).
ALTER TABLE exports ADD COLUMN cameras TEXT;
-- The export a pin belongs to: a visit's export pins each of its cameras.
ALTER TABLE export_pins ADD COLUMN export_id INTEGER;
