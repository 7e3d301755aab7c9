#pragma once

/// @file
/// The store's schema as the ordered steps that build it: step i takes a
/// file from version i to version i + 1 (docs/storage.md, "Schema versions
/// and migrations"). Only sqlite_store.cpp runs them; tests read them to make
/// a file of an older version.

#include <string_view>

namespace trellis::detail {

/// The steps that bring a file from version i to version i + 1, in order.
/// A released step is never edited: a schema change is a new step at the end.
/// `trellis_meta` names the application, so a foreign SQLite file is told
/// apart from a Trellis store even when its `user_version` happens to match.
inline constexpr std::string_view store_migrations[] = {
    // Version 1: the initial schema.
    R"sql(
CREATE TABLE trellis_meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
INSERT INTO trellis_meta (key, value) VALUES ('application', 'trellis');

CREATE TABLE workflows (
  id          TEXT PRIMARY KEY,
  submit_key  TEXT UNIQUE,
  state       INTEGER NOT NULL,
  canvas      BLOB,
  result      BLOB,
  error       BLOB,
  created_at  INTEGER NOT NULL,
  finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX workflows_unfinished ON workflows (created_at) WHERE state NOT IN (3, 4, 6);

CREATE TABLE nodes (
  workflow_id TEXT NOT NULL,
  node        INTEGER NOT NULL,
  task        TEXT NOT NULL,
  state       INTEGER NOT NULL,
  attempt     INTEGER NOT NULL,
  result      BLOB,
  error       BLOB,
  due_at      INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  retry_base  INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (workflow_id, node)
) WITHOUT ROWID;

CREATE TABLE attempts (
  workflow_id   TEXT NOT NULL,
  node          INTEGER NOT NULL,
  attempt       INTEGER NOT NULL,
  error_type    TEXT NOT NULL,
  error_message TEXT NOT NULL,
  finished_at   INTEGER NOT NULL,
  PRIMARY KEY (workflow_id, node, attempt)
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
  key         TEXT PRIMARY KEY,
  result      BLOB,
  workflow_id TEXT NOT NULL,
  node        INTEGER NOT NULL,
  created_at  INTEGER NOT NULL
);

CREATE TABLE dead_letters (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id  TEXT NOT NULL,
  workflow_id TEXT NOT NULL,
  node        INTEGER NOT NULL,
  task        TEXT NOT NULL,
  reason      TEXT NOT NULL,
  error       TEXT NOT NULL,
  attempts    INTEGER NOT NULL,
  envelope    BLOB NOT NULL,
  created_at  INTEGER NOT NULL,
  replayed_at INTEGER NOT NULL DEFAULT 0
);
)sql",
    // Version 2: the latest progress report and custom state of a node's
    // running (or last) attempt. A table of its own, not columns of `nodes`:
    // node rows drive a restore (a non-terminal row says an attempt was
    // made), and a progress report must change nothing a restore does.
    R"sql(
CREATE TABLE node_progress (
  workflow_id  TEXT NOT NULL,
  node         INTEGER NOT NULL,
  task         TEXT NOT NULL,
  attempt      INTEGER NOT NULL,
  done         INTEGER,
  total        INTEGER,
  message      TEXT NOT NULL,
  custom_state TEXT,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (workflow_id, node)
) WITHOUT ROWID;
)sql",
    // Version 3: the canvas a leaf's handler replaced itself with, written
    // in the batch that applies that outcome. A restore attaches these in
    // `first_node` order before replaying the node rows, so the nodes they
    // grew get the ids they had (docs/decisions/0029-dynamic-expansion.md).
    R"sql(
CREATE TABLE node_replacements (
  workflow_id TEXT NOT NULL,
  node        INTEGER NOT NULL,
  attempt     INTEGER NOT NULL,
  first_node  INTEGER NOT NULL,
  canvas      BLOB NOT NULL,
  created_at  INTEGER NOT NULL,
  PRIMARY KEY (workflow_id, node)
) WITHOUT ROWID;
)sql",
    // Version 4: retention (docs/decisions/0036-retention.md). The dispatcher
    // deletes finished workflows by age, idempotency keys and dead letters by
    // their own ages, in bounded batches; each needs its age indexed, or a
    // sweep would scan the whole table. The partial index repeats the
    // terminal states (SUCCESS, FAILURE, REVOKED) so it only holds finished
    // workflows: unfinished ones are never pruned.
    R"sql(
CREATE INDEX workflows_finished ON workflows (finished_at) WHERE state IN (3, 4, 6);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
CREATE INDEX dead_letters_created ON dead_letters (created_at);
)sql",
    // Version 5: periodic schedules (docs/schedules.md). One row per
    // schedule: its spec in columns, the canvas it submits, and the state the
    // scheduler recorded after its last submission; `revision` makes every
    // update a compare-and-set (decision 0034). One self-contained step.
    R"sql(
CREATE TABLE schedules (
  name           TEXT PRIMARY KEY,
  every_ms       INTEGER,
  cron           TEXT NOT NULL,
  zone           TEXT NOT NULL,
  overlap        TEXT NOT NULL,
  catchup        TEXT NOT NULL,
  anchor_ms      INTEGER NOT NULL,
  canvas         BLOB NOT NULL,
  source         TEXT NOT NULL,
  paused         INTEGER NOT NULL,
  last_tick      INTEGER,
  buffered       INTEGER,
  last_submitted INTEGER,
  last_workflow  TEXT,
  trigger_at     INTEGER,
  revision       INTEGER NOT NULL,
  updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
};

}  // namespace trellis::detail
