-- The current SQLite schema: what applying every migration under migrations/sqlite/ to an empty
-- file produces. A migration that changes the schema changes this file in the same commit
-- (tests/test_migrations.py compares the two); the migrations stay the source of truth.

-- Written by store/migrate.py before the first migration runs.
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE suites (
    suite_key    TEXT PRIMARY KEY,
    suite_secret TEXT NOT NULL
);

CREATE TABLE corps (
    corp_id  TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    document TEXT NOT NULL
);

CREATE TABLE departments (
    corp_id   TEXT NOT NULL,
    dept_id   INTEGER NOT NULL,
    parent_id INTEGER NOT NULL,
    name      TEXT NOT NULL,
    PRIMARY KEY (corp_id, dept_id)
);
CREATE INDEX departments_parent ON departments (corp_id, parent_id);

CREATE TABLE users (
    corp_id TEXT NOT NULL,
    userid  TEXT NOT NULL,
    name    TEXT NOT NULL,
    active  INTEGER NOT NULL,
    mobile  TEXT,
    title   TEXT,
    email   TEXT,
    PRIMARY KEY (corp_id, userid)
);

CREATE TABLE user_depts (
    corp_id TEXT NOT NULL,
    dept_id INTEGER NOT NULL,
    userid  TEXT NOT NULL,
    PRIMARY KEY (corp_id, dept_id, userid)
);
CREATE INDEX user_depts_by_user ON user_depts (corp_id, userid, dept_id);

CREATE TABLE apps (
    agent_id   INTEGER PRIMARY KEY,
    corp_id    TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    app_key    TEXT UNIQUE,
    app_secret TEXT,
    suite_key  TEXT,
    visible_to TEXT,
    limits     TEXT NOT NULL
);
CREATE INDEX apps_corp ON apps (corp_id);

CREATE TABLE robots (
    robot_code TEXT PRIMARY KEY,
    corp_id    TEXT NOT NULL,
    agent_id   INTEGER NOT NULL,
    name       TEXT NOT NULL
);

CREATE TABLE templates (
    template_id TEXT PRIMARY KEY,
    corp_id     TEXT NOT NULL,
    agent_id    INTEGER NOT NULL,
    status      TEXT NOT NULL,
    msg         TEXT NOT NULL
);

CREATE TABLE chat_groups (
    corp_id              TEXT NOT NULL,
    open_conversation_id TEXT NOT NULL,
    name                 TEXT NOT NULL,
    members              TEXT NOT NULL,
    robots               TEXT NOT NULL,
    PRIMARY KEY (corp_id, open_conversation_id)
);

CREATE TABLE webhooks (
    access_token         TEXT PRIMARY KEY,
    corp_id              TEXT NOT NULL,
    open_conversation_id TEXT NOT NULL,
    name                 TEXT NOT NULL,
    keywords             TEXT NOT NULL,
    secret               TEXT,
    ip_allowlist         TEXT NOT NULL
);

-- kind: internal (principal = app_key) | isv (principal = suite_key, with corp_id) | suite
CREATE TABLE tokens (
    token      TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    principal  TEXT NOT NULL,
    corp_id    TEXT NOT NULL,
    issued_at  REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX tokens_principal ON tokens (kind, principal, corp_id, expires_at);

-- One row per accepted send; seq is the order of acceptance.
CREATE TABLE tasks (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id              INTEGER NOT NULL UNIQUE,
    source               TEXT NOT NULL,
    corp_id              TEXT NOT NULL,
    agent_id             INTEGER,
    app_type             TEXT NOT NULL,
    request              TEXT NOT NULL,
    msgtype              TEXT NOT NULL,
    msg                  TEXT NOT NULL,
    content_hash         BLOB,
    userids              TEXT NOT NULL,
    dept_ids             TEXT NOT NULL,
    to_all_user          INTEGER NOT NULL,
    template_id          TEXT,
    template_data        TEXT,
    robot_code           TEXT,
    process_query_key    TEXT,
    open_conversation_id TEXT,
    warnings             TEXT NOT NULL,
    accepted_at          REAL NOT NULL,
    not_before           REAL NOT NULL,
    status               INTEGER NOT NULL DEFAULT 0,
    total                INTEGER,
    cursor               INTEGER NOT NULL DEFAULT 0,
    delivered            INTEGER NOT NULL DEFAULT 0,
    read_count           INTEGER NOT NULL DEFAULT 0,
    invalid_dept_ids     TEXT NOT NULL DEFAULT '[]',
    claimed_by           TEXT,
    claimed_at           REAL,
    finished_at          REAL,
    recalled_at          REAL,
    status_bar           TEXT
);
CREATE INDEX tasks_query_key ON tasks (process_query_key) WHERE process_query_key IS NOT NULL;

-- One row per recipient of a task; a delivered row (outcome 0) is that recipient's message.
-- content_hash is set on rows that take part in the same-content rule; the dedup index doubles as
-- the per-(app, user, day) counter, so the daily count is always the number of delivered rows.
CREATE TABLE deliveries (
    id                   INTEGER PRIMARY KEY,
    task_seq             INTEGER NOT NULL,
    pos                  INTEGER NOT NULL,
    corp_id              TEXT NOT NULL,
    userid               TEXT,
    open_conversation_id TEXT,
    agent_id             INTEGER,
    outcome              INTEGER NOT NULL,
    reason               TEXT,
    code                 TEXT,
    day                  INTEGER,
    content_hash         BLOB,
    created_at           REAL NOT NULL,
    read_at              REAL,
    recalled             INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_inbox ON deliveries (corp_id, userid, created_at, id) WHERE outcome = 0;
CREATE UNIQUE INDEX deliveries_dedup ON deliveries (agent_id, userid, day, content_hash)
    WHERE outcome = 0 AND content_hash IS NOT NULL;

-- The first task that delivered a content for an app on a DingTalk day: a fresh task whose content
-- no other task delivered that day needs no per-recipient same-content check.
CREATE TABLE content_days (
    agent_id     INTEGER NOT NULL,
    day          INTEGER NOT NULL,
    content_hash BLOB NOT NULL,
    task_seq     INTEGER NOT NULL,
    PRIMARY KEY (agent_id, day, content_hash)
);

-- Recipients delivered per (app, calendar minute of acceptance), for the per-minute cap.
CREATE TABLE minute_counts (
    agent_id INTEGER NOT NULL,
    minute   INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (agent_id, minute)
);

-- One app's tasks are decided in order of acceptance: the claim looks for earlier unfinished ones.
CREATE INDEX tasks_agent_pending ON tasks (agent_id, seq) WHERE status < 2;


-- Every unfinished task in acceptance order: claims read it, and the backlog's size and age and the
-- task list's status filter come off it.
CREATE INDEX tasks_pending ON tasks (seq) WHERE status < 2;

-- The web UI lists a corp's first users by name.
CREATE INDEX users_by_name ON users (corp_id, name, userid);
