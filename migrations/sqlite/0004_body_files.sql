-- Sealed log bodies of the SQLite backend live in files beside the database (store/body_files.rs);
-- this says where a record's are. NULL: the bodies are in the row, or there are none.
ALTER TABLE log_records ADD COLUMN body_ref TEXT;
