"""The SQLite schema, as numbered migrations applied in order (each in its own transaction) and
recorded in ``schema_migrations``. Never edit a released migration: append a new one."""
from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "accounts index, checkpoints, mirror state, transaction journal", """
CREATE TABLE accounts (
    protocol TEXT NOT NULL,
    account TEXT NOT NULL,
    first_block INTEGER NOT NULL,
    PRIMARY KEY (protocol, account)
) WITHOUT ROWID;
CREATE INDEX accounts_first_block ON accounts (first_block);

CREATE TABLE checkpoints (
    protocol TEXT NOT NULL,
    stream TEXT NOT NULL,
    block INTEGER NOT NULL,
    hash TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (protocol, stream)
) WITHOUT ROWID;

-- recent (number, hash) pairs of each stream, to find the fork point of a reorg
CREATE TABLE checkpoint_history (
    protocol TEXT NOT NULL,
    stream TEXT NOT NULL,
    block INTEGER NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (protocol, stream, block)
) WITHOUT ROWID;
CREATE INDEX checkpoint_history_block ON checkpoint_history (block);

CREATE TABLE mirror_rows (
    protocol TEXT NOT NULL,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    block INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (protocol, key)
) WITHOUT ROWID;
CREATE INDEX mirror_rows_block ON mirror_rows (block);

CREATE TABLE mirror_blobs (
    protocol TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    block INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (protocol, name)
) WITHOUT ROWID;

CREATE TABLE attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    protocol TEXT NOT NULL,
    plan_kind TEXT NOT NULL,
    decision TEXT NOT NULL,
    code TEXT,
    created_block INTEGER NOT NULL,
    created_at REAL NOT NULL,
    details TEXT NOT NULL
);

CREATE TABLE attempt_accounts (
    attempt_id INTEGER NOT NULL REFERENCES attempts (id),
    account TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (attempt_id, account)
) WITHOUT ROWID;

-- fees are decimal text: wei amounts are not bounded by SQLite's 64-bit integers
CREATE TABLE transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt_id INTEGER NOT NULL REFERENCES attempts (id),
    kind TEXT NOT NULL,
    sender TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    max_fee TEXT NOT NULL,
    max_priority TEXT NOT NULL,
    gas_limit INTEGER NOT NULL,
    raw TEXT NOT NULL,
    replaces TEXT,
    status TEXT NOT NULL,
    block INTEGER,
    gas_used INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX transactions_attempt ON transactions (attempt_id);
CREATE INDEX transactions_status ON transactions (status);
CREATE INDEX transactions_sender_nonce ON transactions (sender, nonce);

CREATE TABLE tx_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tx_id INTEGER NOT NULL REFERENCES transactions (id),
    status TEXT NOT NULL,
    block INTEGER,
    at REAL NOT NULL,
    note TEXT
);
CREATE INDEX tx_transitions_tx ON tx_transitions (tx_id);
"""),
    (2, "the chain the store belongs to", """
CREATE TABLE store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
)
"""),
)

BOOTSTRAP = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""
