-- Facts the notification form (別記様式) needs about a contract, and what was filed.
ALTER TABLE contracts ADD COLUMN contract_date TEXT;
ALTER TABLE contracts ADD COLUMN purposes TEXT;
ALTER TABLE contracts ADD COLUMN subcontractors TEXT;

CREATE TABLE form_filings (
    contract_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    filed_at TEXT NOT NULL,
    filed_by TEXT NOT NULL,
    content TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    PRIMARY KEY (contract_id, version)
);

-- A contract's redaction list: `term` (client names, code names, people) or `field`
-- (extra confidential field names).
ALTER TABLE contract_terms ADD COLUMN kind TEXT NOT NULL DEFAULT 'term';
