CREATE TABLE policy_generation (id BIGINT PRIMARY KEY CHECK (id = 1), generation BIGINT NOT NULL);
INSERT INTO policy_generation (id, generation) VALUES (1, 1);

CREATE TABLE providers (
    id TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    suspended BIGINT NOT NULL DEFAULT 0,
    suspend_reason TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE provider_versions (
    provider_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    registration TEXT NOT NULL,
    content_sha256 TEXT NOT NULL,
    changes TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (provider_id, version)
);

CREATE TABLE provider_events (
    id BIGSERIAL PRIMARY KEY,
    provider_id TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT,
    actor TEXT NOT NULL,
    at TEXT NOT NULL
);

CREATE TABLE contracts (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    client TEXT NOT NULL,
    providers TEXT,
    japan_only BIGINT NOT NULL,
    allow_non_text BIGINT NOT NULL,
    ends_on TEXT,
    retention_days BIGINT,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    closed_at TEXT
);

CREATE TABLE contract_terms (
    contract_id TEXT NOT NULL,
    term TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (contract_id, term)
);

CREATE TABLE staff (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    trained_on TEXT,
    active BIGINT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    staff_id TEXT NOT NULL,
    contract_id TEXT NOT NULL,
    deliverable TEXT,
    purpose TEXT,
    expires_at TEXT,
    revoked_at TEXT,
    created_at TEXT NOT NULL
);

-- Only the log writer inserts here. seq is assigned by the writer under the chain_head lock.
CREATE TABLE log_records (
    seq BIGINT PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    staff_id TEXT,
    key_id TEXT,
    contract_id TEXT,
    deliverable TEXT,
    purpose TEXT,
    provider_id TEXT,
    provider_version BIGINT,
    model TEXT,
    endpoint TEXT NOT NULL,
    streamed BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    code TEXT,
    http_status BIGINT NOT NULL,
    latency_us BIGINT NOT NULL,
    input_tokens BIGINT,
    output_tokens BIGINT,
    redactions TEXT NOT NULL,
    request_body BYTEA,
    output_body BYTEA,
    request_sha256 TEXT,
    output_sha256 TEXT,
    bodies_deleted TEXT,
    prev_hash TEXT NOT NULL,
    record_hash TEXT NOT NULL
);
CREATE INDEX log_records_contract ON log_records (contract_id, deliverable, at);

-- The chain's head, one row; writers lock it to append in one total order.
CREATE TABLE chain_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL,
    record_hash TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO chain_head (id, seq, record_hash, updated_at)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', '1970-01-01T00:00:00Z');

CREATE TABLE checkpoints (
    seq BIGINT PRIMARY KEY,
    record_hash TEXT NOT NULL,
    at TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL
);

-- Per-contract data keys, stored only wrapped by a master key kept outside the database.
CREATE TABLE data_keys (
    contract_id TEXT PRIMARY KEY,
    master_key_id TEXT,
    wrapped BYTEA,
    created_at TEXT NOT NULL,
    destroyed_at TEXT
);

-- Requests forwarded but not yet logged; recovered as `interrupted` records after a crash.
CREATE TABLE pending_requests (
    request_id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    record TEXT NOT NULL,
    at TEXT NOT NULL
);

CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
