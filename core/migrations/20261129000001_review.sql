-- The review store: exchanges, feedback, the review queue, operator actions, curated answers,
-- operator accounts, sessions and API tokens. One schema for SQLite and PostgreSQL: ids are
-- text, times are Unix seconds (BIGINT), structured values are JSON text.

CREATE TABLE exchanges (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    conversation TEXT NOT NULL,
    user_id TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    outcome TEXT NOT NULL,
    backend TEXT,
    confidence DOUBLE PRECISION NOT NULL,
    citations TEXT NOT NULL,
    passages TEXT NOT NULL,
    latency TEXT NOT NULL,
    delivery TEXT NOT NULL,
    at TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX exchanges_created_at ON exchanges (created_at);
CREATE INDEX exchanges_user ON exchanges (user_id);

CREATE TABLE feedback (
    id TEXT PRIMARY KEY,
    exchange_id TEXT NOT NULL REFERENCES exchanges (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    user_id TEXT NOT NULL,
    at TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX feedback_exchange ON feedback (exchange_id);

CREATE TABLE queue (
    exchange_id TEXT PRIMARY KEY REFERENCES exchanges (id) ON DELETE CASCADE,
    reasons TEXT NOT NULL,
    status TEXT NOT NULL,
    claimed_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX queue_status ON queue (status, created_at);

CREATE TABLE actions (
    id TEXT PRIMARY KEY,
    exchange_id TEXT NOT NULL REFERENCES exchanges (id) ON DELETE CASCADE,
    operator TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX actions_exchange ON actions (exchange_id);

CREATE TABLE curated (
    id TEXT PRIMARY KEY,
    questions TEXT NOT NULL,
    answer TEXT NOT NULL,
    citation TEXT,
    url TEXT,
    status TEXT NOT NULL,
    source_exchange TEXT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE operators (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES operators (username) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    username TEXT NOT NULL REFERENCES operators (username) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
