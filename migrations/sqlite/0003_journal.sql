-- Requests about to be forwarded are noted in a per-instance journal file now (audit::journal),
-- not in the database: these tables are no longer written or read.
DROP TABLE pending_requests;
DROP TABLE instances;
