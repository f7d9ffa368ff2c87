-- Used by the SQLite backend only (bodies in files beside its database); PostgreSQL keeps bodies
-- in the row, so here it stays NULL. Kept so that both schemas have the same columns.
ALTER TABLE log_records ADD COLUMN body_ref TEXT;
