"""The catalog: SQLite tables (schema.sql), the one write path (writer) and read queries."""
