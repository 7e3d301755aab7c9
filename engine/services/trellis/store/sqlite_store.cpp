#include "trellis/store/sqlite_store.hpp"

#include "trellis/store/store_schema.hpp"

#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <utility>

namespace trellis::detail {

namespace {

constexpr int schema_version_of_this_build = static_cast<int>(std::size(store_migrations));

// The partial index and `unfinished_workflows` spell the terminal states as
// integers; they must stay the enumerators' values.
static_assert(static_cast<int>(node_state::success) == 3, "schema spells success as 3");
static_assert(static_cast<int>(node_state::failure) == 4, "schema spells failure as 4");
static_assert(static_cast<int>(node_state::revoked) == 6, "schema spells revoked as 6");

constexpr std::string_view application_name = "trellis";

/// Values are written by this build, but a damaged file must not blow the
/// stack (defaults::max_stored_value_depth).
constexpr std::size_t stored_value_max_depth = defaults::max_stored_value_depth;

// -- RAII for the C API ---------------------------------------------------------

struct db_closer {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct statement_finalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }
};
using db_ptr = std::unique_ptr<sqlite3, db_closer>;
using statement_ptr = std::unique_ptr<sqlite3_stmt, statement_finalizer>;

/// Resets a cached statement when a call is done with it: a SELECT left
/// mid-way would keep its read transaction open and stall WAL checkpoints.
class statement_use {
 public:
  explicit statement_use(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}
  ~statement_use() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  statement_use(const statement_use&) = delete;
  statement_use& operator=(const statement_use&) = delete;

  sqlite3_stmt* get() const noexcept { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

/// Binds parameters 1, 2, 3, ... in order and keeps the first failure.
/// Text and blobs are bound SQLITE_STATIC: every caller keeps them alive until
/// its `statement_use` clears the bindings, which saves a copy per column on
/// the hot write path.
class binder {
 public:
  explicit binder(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}

  binder& text(std::string_view s) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_text64(stmt_, ++index_, s.data(), s.size(), SQLITE_STATIC, SQLITE_UTF8);
    }
    return *this;
  }
  binder& optional_text(const std::optional<std::string>& s) {
    if (!s) {
      return null();
    }
    return text(*s);
  }
  binder& blob(std::string_view bytes) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_blob64(stmt_, ++index_, bytes.data(), bytes.size(), SQLITE_STATIC);
    }
    return *this;
  }
  /// A packed value; `nullopt` (a nil value) is stored as NULL.
  binder& packed(const std::optional<std::string>& bytes) {
    if (!bytes) {
      return null();
    }
    return blob(*bytes);
  }
  binder& integer(std::int64_t i) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_int64(stmt_, ++index_, i);
    }
    return *this;
  }
  binder& state(node_state s) { return integer(static_cast<std::int64_t>(s)); }
  binder& null() {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_null(stmt_, ++index_);
    }
    return *this;
  }

  int rc() const noexcept { return rc_; }

 private:
  sqlite3_stmt* stmt_;
  int index_ = 0;
  int rc_ = SQLITE_OK;
};

/// A nil value is stored as NULL: "no result" stays visible to plain SQL and
/// costs nothing.
std::optional<std::string> pack_column(const value& v) {
  if (v.is_nil()) {
    return std::nullopt;
  }
  return pack_to_string(v);
}

// -- errors ---------------------------------------------------------------------

errc code_of(int rc) noexcept {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return errc::store_locked;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return errc::store_corrupt;
    default:
      return errc::store_failed;
  }
}

/// "<what>: <sqlite's message>", with the code that says what happens next.
error failure(sqlite3* db, int rc, const std::string& what) {
  const char* detail = db != nullptr && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return error{code_of(rc), what + ": " + detail};
}

[[noreturn]] void throw_setup(sqlite3* db, int rc, const std::string& what) {
  auto err = failure(db, rc, what);
  throw setup_error(err.code(), err.message());
}

// -- columns --------------------------------------------------------------------

std::string column_text(sqlite3_stmt* stmt, int col) {
  const auto* p = sqlite3_column_text(stmt, col);
  auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt, col));
  return p == nullptr ? std::string{} : std::string{reinterpret_cast<const char*>(p), n};
}

std::optional<std::string> column_optional_text(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
    return std::nullopt;
  }
  return column_text(stmt, col);
}

std::string column_blob(sqlite3_stmt* stmt, int col) {
  const auto* p = sqlite3_column_blob(stmt, col);
  auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt, col));
  return p == nullptr ? std::string{} : std::string{static_cast<const char*>(p), n};
}

/// Unpacks a value column; bytes that do not decode mean a damaged file.
template <class What>
expected<value> column_value(sqlite3_stmt* stmt, int col, What what) {
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
    return value{};
  }
  const auto* p = sqlite3_column_blob(stmt, col);
  auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt, col));
  std::string_view bytes{p == nullptr ? "" : static_cast<const char*>(p), n};
  auto v = unpack_from_string(bytes, bytes.size(), stored_value_max_depth);
  if (!v) {
    return error{errc::store_corrupt, what() + " holds a value that does not decode: " + v.error().message()};
  }
  return v;
}

template <class What>
expected<node_state> column_state(sqlite3_stmt* stmt, int col, What what) {
  auto i = sqlite3_column_int64(stmt, col);
  if (i < static_cast<std::int64_t>(node_state::pending) || i > static_cast<std::int64_t>(node_state::revoked)) {
    return error{errc::store_corrupt, what() + " holds unknown state " + std::to_string(i)};
  }
  return static_cast<node_state>(i);
}

// -- setup helpers (throwing: they run before anything flows) -------------------

/// `persistent` tells SQLite the statement lives as long as the connection
/// (the cached ones), so it does not draw on the lookaside pool.
statement_ptr prepare(sqlite3* db, std::string_view sql, const std::string& what, bool persistent = false) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), persistent ? SQLITE_PREPARE_PERSISTENT : 0,
                              &raw, nullptr);
  statement_ptr stmt{raw};
  if (rc != SQLITE_OK) {
    throw_setup(db, rc, what);
  }
  return stmt;
}

void exec(sqlite3* db, const std::string& sql, const std::string& what) {
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    throw_setup(db, rc, what);
  }
}

/// Runs a one-column query; `nullopt` when it returns no row.
std::optional<std::string> query_text(sqlite3* db, std::string_view sql, const std::string& what) {
  auto stmt = prepare(db, sql, what);
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_DONE) {
    return std::nullopt;
  }
  if (rc != SQLITE_ROW) {
    throw_setup(db, rc, what);
  }
  return column_text(stmt.get(), 0);
}

std::int64_t query_int(sqlite3* db, std::string_view sql, const std::string& what) {
  auto stmt = prepare(db, sql, what);
  int rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) {
    throw_setup(db, rc == SQLITE_DONE ? SQLITE_ERROR : rc, what);
  }
  return sqlite3_column_int64(stmt.get(), 0);
}

bool is_memory_path(const std::string& path) { return path == ":memory:"; }

/// "FULL" or "NORMAL", in any case; anything else is a configuration error.
std::string synchronous_pragma(const std::string& setting) {
  std::string upper;
  for (char c : setting) {
    upper += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  if (upper != "FULL" && upper != "NORMAL") {
    throw setup_error(errc::store_failed, "store option synchronous must be FULL or NORMAL, not '" + setting + "'");
  }
  return "PRAGMA synchronous = " + upper;
}

constexpr std::string_view workflow_columns = "id, submit_key, state, canvas, result, error, created_at, finished_at";
constexpr std::string_view node_columns =
    "workflow_id, node, task, state, attempt, result, error, due_at, updated_at, retry_base";
constexpr std::string_view dead_letter_columns =
    "id, message_id, workflow_id, node, task, reason, error, attempts, envelope, created_at, replayed_at";

/// The parameter binding of a query that takes none.
void no_parameters(binder&) {}

/// How `impl::query` adds a row to what it returns.
template <class T>
void keep_row(std::vector<T>& rows, T row) {
  rows.push_back(std::move(row));
}

template <class T>
void keep_row(std::optional<T>& rows, T row) {
  rows = std::move(row);
}

std::string select_from(std::string_view columns, std::string_view rest) {
  std::string sql{"SELECT "};
  sql += columns;
  sql += ' ';
  sql += rest;
  return sql;
}

}  // namespace

// -- impl -------------------------------------------------------------------------

struct sqlite_store::impl {
  std::string path;
  bool read_only = false;
  int version = 0;
  // Declared before the statements so it is closed after they are finalized.
  db_ptr db;

  // Every statement is prepared once at open: the hot writes run 100k+ times
  // per second inside one transaction and must not re-parse SQL.
  statement_ptr begin;
  statement_ptr commit;
  statement_ptr rollback;
  statement_ptr insert_workflow;
  statement_ptr finish_workflow;
  statement_ptr reopen_workflow;
  statement_ptr upsert_node;
  statement_ptr insert_attempt;
  statement_ptr upsert_progress;
  statement_ptr put_idempotency_key;
  statement_ptr insert_dead_letter;
  statement_ptr mark_dead_letter_replayed;
  statement_ptr find_workflow;
  statement_ptr find_workflow_by_key;
  statement_ptr unfinished_workflows;
  statement_ptr recent_workflows;
  statement_ptr nodes_of;
  statement_ptr attempts_of;
  statement_ptr progress_of;
  statement_ptr insert_replacement;
  statement_ptr replacements_of;
  statement_ptr find_idempotency_key;
  statement_ptr dead_letters;
  statement_ptr find_dead_letter;

  void connect(const store_options& options);
  /// Checks that the file is empty or a Trellis store this build can read;
  /// returns whether it is empty.
  bool verify_identity();
  void migrate();
  void prepare_statements();

  error refuse_write(const std::string& what) const {
    return error{errc::store_failed, what + ": store '" + path + "' is open read-only"};
  }

  /// Steps a bound write statement to completion.
  template <class What>
  expected<void> run(const statement_use& use, const binder& b, What what) {
    int rc = b.rc();
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(use.get());
    }
    if (rc != SQLITE_DONE) {
      return failure(db.get(), rc, what());
    }
    return {};
  }

  /// Runs a write statement of the batch: refused on a read-only store, else
  /// `bind` sets its parameters on a `binder&` and it is stepped to completion.
  /// Text and blobs bound must outlive the call (they are bound SQLITE_STATIC).
  template <class Bind, class What>
  expected<void> write(sqlite3_stmt* stmt, Bind bind, What what) {
    if (read_only) {
      return refuse_write(what());
    }
    statement_use use{stmt};
    binder b{use.get()};
    bind(b);
    return run(use, b, what);
  }

  /// As `write`, for an UPDATE that must hit exactly the row it names.
  template <class Bind, class What>
  expected<void> update(sqlite3_stmt* stmt, Bind bind, What what) {
    auto done = write(stmt, bind, what);
    if (!done) {
      return done;
    }
    if (sqlite3_changes(db.get()) == 0) {
      return error{errc::not_found, what() + ": no such row in store '" + path + "'"};
    }
    return {};
  }

  /// Runs a query and collects its rows into a `Rows`: a `std::vector<T>`
  /// keeps every row, a `std::optional<T>` the one a key names. `bind` sets
  /// the parameters on a `binder&`; `read` makes a row a `T` (returning `T`,
  /// or `expected<T>` when the row may be damaged). Stops at the first failure.
  template <class Rows, class Bind, class Read, class What>
  expected<Rows> query(sqlite3_stmt* stmt, Bind bind, Read read, What what) {
    statement_use use{stmt};
    binder b{use.get()};
    bind(b);
    if (b.rc() != SQLITE_OK) {
      return failure(db.get(), b.rc(), what());
    }
    Rows rows;
    for (;;) {
      int rc = sqlite3_step(use.get());
      if (rc == SQLITE_DONE) {
        return rows;
      }
      if (rc != SQLITE_ROW) {
        return failure(db.get(), rc, what());
      }
      expected<typename Rows::value_type> row = read(use.get());
      if (!row) {
        return row.error();
      }
      keep_row(rows, std::move(*row));
    }
  }
};

void sqlite_store::impl::connect(const store_options& options) {
  auto sync_pragma = synchronous_pragma(options.synchronous);
  bool memory = is_memory_path(path);
  if (read_only && memory) {
    throw setup_error(errc::store_failed, "a read-only store needs an existing file, not ':memory:'");
  }
  // NOMUTEX: a store is used by one thread at a time, so SQLite's own
  // per-connection mutex would only cost time.
  int flags = (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  db.reset(raw);  // the handle exists (and must be closed) even when opening fails
  if (rc != SQLITE_OK) {
    throw_setup(db.get(), rc, std::string{"cannot open store '"} + path + "'" + (read_only ? " read-only" : ""));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), options.busy_timeout_ms);

  bool empty = verify_identity();
  if (read_only) {
    if (empty) {
      throw setup_error(errc::store_corrupt, "store '" + path + "' is empty, not a Trellis store");
    }
    if (version < schema_version_of_this_build) {
      throw setup_error(errc::store_failed, "store '" + path + "' has schema version " + std::to_string(version) +
                                                ", older than this build (" +
                                                std::to_string(schema_version_of_this_build) +
                                                "); open it once read-write to migrate it");
    }
  } else {
    if (!memory) {
      // WAL: readers (status, dlq) never block the dispatcher, and a commit
      // is one sequential append. The mode is persistent in the file.
      auto mode = query_text(db.get(), "PRAGMA journal_mode = WAL", "switch store '" + path + "' to WAL");
      if (!mode || *mode != "wal") {
        throw setup_error(errc::store_failed, "store '" + path + "' cannot use WAL journaling (journal_mode is '" +
                                                  mode.value_or("") + "')");
      }
    }
    exec(db.get(), sync_pragma, "configure store '" + path + "'");
    migrate();
  }
  prepare_statements();
}

bool sqlite_store::impl::verify_identity() {
  // SQLite reads the file header lazily: this first query is where a file of
  // random bytes reports SQLITE_NOTADB ("file is not a database").
  auto objects = query_int(db.get(), "SELECT count(*) FROM sqlite_master", "cannot open store '" + path + "'");
  version = static_cast<int>(query_int(db.get(), "PRAGMA user_version", "read schema version of '" + path + "'"));
  if (objects == 0 && version == 0) {
    return true;
  }
  auto has_meta =
      query_int(db.get(), "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'trellis_meta'",
                "read store '" + path + "'");
  std::optional<std::string> application;
  if (has_meta != 0) {
    application =
        query_text(db.get(), "SELECT value FROM trellis_meta WHERE key = 'application'", "read store '" + path + "'");
  }
  if (application.value_or("") != application_name) {
    throw setup_error(errc::store_corrupt,
                      "'" + path +
                          "' is an SQLite database but not a Trellis store (no trellis application mark); "
                          "refusing to touch it");
  }
  if (version > schema_version_of_this_build) {
    throw setup_error(errc::store_corrupt, "store '" + path + "' has schema version " + std::to_string(version) +
                                               ", which is newer than this build (" +
                                               std::to_string(schema_version_of_this_build) + "); use a newer trellis");
  }
  if (version < 1) {
    throw setup_error(errc::store_corrupt, "store '" + path + "' is marked as Trellis but has no schema version");
  }
  return false;
}

void sqlite_store::impl::migrate() {
  if (version == schema_version_of_this_build) {
    return;
  }
  // IMMEDIATE takes the write lock first, so two processes opening the same
  // new file cannot both run the steps; the loser re-reads the version below.
  exec(db.get(), "BEGIN IMMEDIATE", "lock store '" + path + "' for migration");
  try {
    version = static_cast<int>(query_int(db.get(), "PRAGMA user_version", "read schema version of '" + path + "'"));
    if (version > schema_version_of_this_build) {
      throw setup_error(errc::store_corrupt, "store '" + path + "' has schema version " + std::to_string(version) +
                                                 ", which is newer than this build (" +
                                                 std::to_string(schema_version_of_this_build) + ")");
    }
    for (int v = version; v < schema_version_of_this_build; ++v) {
      exec(db.get(), std::string{store_migrations[v]},
           "migrate store '" + path + "' to schema version " + std::to_string(v + 1));
    }
    // user_version is written inside the same transaction as the steps, so a
    // crash leaves either the old schema and version or the new ones.
    exec(db.get(), "PRAGMA user_version = " + std::to_string(schema_version_of_this_build),
         "set schema version of '" + path + "'");
    exec(db.get(), "COMMIT", "commit migration of '" + path + "'");
  } catch (const setup_error&) {
    sqlite3_exec(db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  version = schema_version_of_this_build;
}

void sqlite_store::impl::prepare_statements() {
  auto p = [this](std::string_view sql) {
    return prepare(db.get(), sql, "prepare statements for store '" + path + "'", true);
  };
  begin = p("BEGIN IMMEDIATE");
  commit = p("COMMIT");
  rollback = p("ROLLBACK");
  insert_workflow =
      p("INSERT INTO workflows (id, submit_key, state, canvas, result, error, created_at, finished_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  finish_workflow = p("UPDATE workflows SET state = ?2, result = ?3, error = ?4, finished_at = ?5 WHERE id = ?1");
  reopen_workflow = p("UPDATE workflows SET state = ?2, result = NULL, error = NULL, finished_at = 0 WHERE id = ?1");
  upsert_node =
      p("INSERT OR REPLACE INTO nodes (workflow_id, node, task, state, attempt, result, error, due_at, updated_at, "
        "retry_base) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  insert_attempt =
      p("INSERT OR REPLACE INTO attempts (workflow_id, node, attempt, error_type, error_message, finished_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  upsert_progress =
      p("INSERT OR REPLACE INTO node_progress (workflow_id, node, task, attempt, done, total, message, "
        "custom_state, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
  progress_of =
      p("SELECT workflow_id, node, task, attempt, done, total, message, custom_state, updated_at "
        "FROM node_progress WHERE workflow_id = ?1 ORDER BY node");
  insert_replacement =
      p("INSERT INTO node_replacements (workflow_id, node, attempt, first_node, canvas, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  replacements_of =
      p("SELECT workflow_id, node, attempt, first_node, canvas, created_at FROM node_replacements "
        "WHERE workflow_id = ?1 ORDER BY first_node");
  // OR IGNORE: the first success wins; a duplicate outcome never rewrites it.
  put_idempotency_key =
      p("INSERT OR IGNORE INTO idempotency_keys (key, result, workflow_id, node, created_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5)");
  insert_dead_letter =
      p("INSERT INTO dead_letters (message_id, workflow_id, node, task, reason, error, attempts, envelope, "
        "created_at, replayed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  mark_dead_letter_replayed = p("UPDATE dead_letters SET replayed_at = ?2 WHERE id = ?1");
  find_workflow = p(select_from(workflow_columns, "FROM workflows WHERE id = ?1"));
  find_workflow_by_key = p(select_from(workflow_columns, "FROM workflows WHERE submit_key = ?1"));
  // The WHERE clause repeats the partial index's, so the planner uses it.
  unfinished_workflows =
      p(select_from(workflow_columns, "FROM workflows WHERE state NOT IN (3, 4, 6) ORDER BY created_at, rowid"));
  // ?2 is a state, or -1 for every state.
  recent_workflows =
      p("SELECT id, submit_key, state, created_at, finished_at FROM workflows WHERE (?2 < 0 OR state = ?2) "
        "AND (?3 IS NULL OR created_at < ?3 OR (created_at = ?3 AND id < ?4)) "
        "ORDER BY created_at DESC, id DESC LIMIT ?1");
  nodes_of = p(select_from(node_columns, "FROM nodes WHERE workflow_id = ?1 ORDER BY node"));
  attempts_of =
      p("SELECT workflow_id, node, attempt, error_type, error_message, finished_at FROM attempts "
        "WHERE workflow_id = ?1 ORDER BY node, attempt");
  find_idempotency_key = p("SELECT result FROM idempotency_keys WHERE key = ?1");
  dead_letters = p(select_from(dead_letter_columns, "FROM dead_letters WHERE ?1 OR replayed_at = 0 ORDER BY id DESC"));
  find_dead_letter = p(select_from(dead_letter_columns, "FROM dead_letters WHERE id = ?1"));
}

namespace {

/// Moves a column that `read` returned into `out`; false, with the error kept
/// in `err`, when the column was damaged.
template <class T>
bool take(expected<T> read, T& out, error& err) {
  if (!read) {
    err = std::move(read.error());
    return false;
  }
  out = std::move(*read);
  return true;
}

expected<workflow_record> read_workflow(sqlite3_stmt* stmt) {
  workflow_record w;
  w.id = column_text(stmt, 0);
  auto what = [&w] { return "workflow " + w.id; };
  w.submit_key = column_optional_text(stmt, 1);
  error err;
  if (!take(column_state(stmt, 2, what), w.state, err) ||
      !take(column_value(stmt, 3, [&] { return what() + " canvas"; }), w.canvas, err) ||
      !take(column_value(stmt, 4, [&] { return what() + " result"; }), w.result, err) ||
      !take(column_value(stmt, 5, [&] { return what() + " error"; }), w.error, err)) {
    return err;
  }
  w.created_at = sqlite3_column_int64(stmt, 6);
  w.finished_at = sqlite3_column_int64(stmt, 7);
  return w;
}

expected<workflow_summary> read_workflow_summary(sqlite3_stmt* stmt) {
  workflow_summary w;
  w.id = column_text(stmt, 0);
  w.submit_key = column_optional_text(stmt, 1);
  error err;
  if (!take(column_state(stmt, 2, [&w] { return "workflow " + w.id; }), w.state, err)) {
    return err;
  }
  w.created_at = sqlite3_column_int64(stmt, 3);
  w.finished_at = sqlite3_column_int64(stmt, 4);
  return w;
}

expected<node_record> read_node(sqlite3_stmt* stmt) {
  node_record n;
  n.workflow_id = column_text(stmt, 0);
  n.node = sqlite3_column_int(stmt, 1);
  auto what = [&n] { return "node " + std::to_string(n.node) + " of workflow " + n.workflow_id; };
  n.task = column_text(stmt, 2);
  n.attempt = sqlite3_column_int(stmt, 4);
  error err;
  if (!take(column_state(stmt, 3, what), n.state, err) ||
      !take(column_value(stmt, 5, [&] { return what() + " result"; }), n.result, err) ||
      !take(column_value(stmt, 6, [&] { return what() + " error"; }), n.error, err)) {
    return err;
  }
  n.due_at = sqlite3_column_int64(stmt, 7);
  n.updated_at = sqlite3_column_int64(stmt, 8);
  n.retry_base = sqlite3_column_int(stmt, 9);
  return n;
}

attempt_record read_attempt(sqlite3_stmt* stmt) {
  attempt_record a;
  a.workflow_id = column_text(stmt, 0);
  a.node = sqlite3_column_int(stmt, 1);
  a.attempt = sqlite3_column_int(stmt, 2);
  a.error_type = column_text(stmt, 3);
  a.error_message = column_text(stmt, 4);
  a.finished_at = sqlite3_column_int64(stmt, 5);
  return a;
}

std::optional<std::int64_t> column_optional_int(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
    return std::nullopt;
  }
  return sqlite3_column_int64(stmt, col);
}

progress_record read_progress(sqlite3_stmt* stmt) {
  progress_record p;
  p.workflow_id = column_text(stmt, 0);
  p.node = sqlite3_column_int(stmt, 1);
  p.task = column_text(stmt, 2);
  p.attempt = sqlite3_column_int(stmt, 3);
  p.progress.done = column_optional_int(stmt, 4);
  p.progress.total = column_optional_int(stmt, 5);
  p.progress.message = column_text(stmt, 6);
  p.progress.state = column_text(stmt, 7);
  p.updated_at = sqlite3_column_int64(stmt, 8);
  return p;
}

expected<replacement_record> read_replacement(sqlite3_stmt* stmt) {
  replacement_record r;
  r.workflow_id = column_text(stmt, 0);
  r.node = sqlite3_column_int(stmt, 1);
  r.attempt = sqlite3_column_int(stmt, 2);
  r.first_node = sqlite3_column_int(stmt, 3);
  auto c = column_value(stmt, 4, [&] { return "replacement of node " + std::to_string(r.node) + " canvas"; });
  if (!c) {
    return c.error();
  }
  r.canvas = std::move(*c);
  r.created_at = sqlite3_column_int64(stmt, 5);
  return r;
}

dead_letter_record read_dead_letter(sqlite3_stmt* stmt) {
  dead_letter_record d;
  d.id = sqlite3_column_int64(stmt, 0);
  d.message_id = column_text(stmt, 1);
  d.workflow_id = column_text(stmt, 2);
  d.node = sqlite3_column_int(stmt, 3);
  d.task = column_text(stmt, 4);
  d.reason = column_text(stmt, 5);
  d.error = column_text(stmt, 6);
  d.attempts = sqlite3_column_int(stmt, 7);
  d.envelope = column_blob(stmt, 8);
  d.created_at = sqlite3_column_int64(stmt, 9);
  d.replayed_at = sqlite3_column_int64(stmt, 10);
  return d;
}

}  // namespace

// -- sqlite_store -------------------------------------------------------------------

sqlite_store::sqlite_store(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

sqlite_store::~sqlite_store() = default;

std::unique_ptr<sqlite_store> sqlite_store::open(const std::string& path, const store_options& options) {
  auto p = std::make_unique<impl>();
  p->path = path;
  p->read_only = options.read_only;
  p->connect(options);
  return std::unique_ptr<sqlite_store>(new sqlite_store(std::move(p)));
}

int sqlite_store::current_schema_version() noexcept { return schema_version_of_this_build; }

int sqlite_store::schema_version() const { return impl_->version; }

expected<void> sqlite_store::begin() {
  return impl_->write(impl_->begin.get(), no_parameters,
                      [this] { return "begin a write batch on store '" + impl_->path + "'"; });
}

expected<void> sqlite_store::commit() {
  statement_use use{impl_->commit.get()};
  return impl_->run(use, binder{use.get()}, [this] { return "commit a write batch to store '" + impl_->path + "'"; });
}

void sqlite_store::rollback() noexcept {
  // Autocommit mode means no transaction is open (never begun, already
  // committed, or rolled back by SQLite itself after an I/O error).
  if (sqlite3_get_autocommit(impl_->db.get()) != 0) {
    return;
  }
  statement_use use{impl_->rollback.get()};
  sqlite3_step(use.get());
}

expected<void> sqlite_store::insert_workflow(const workflow_record& w) {
  auto canvas = pack_column(w.canvas);
  auto result = pack_column(w.result);
  auto err = pack_column(w.error);
  return impl_->write(
      impl_->insert_workflow.get(),
      [&](binder& b) {
        b.text(w.id)
            .optional_text(w.submit_key)
            .state(w.state)
            .packed(canvas)
            .packed(result)
            .packed(err)
            .integer(w.created_at)
            .integer(w.finished_at);
      },
      [&w] { return "insert workflow " + w.id; });
}

expected<void> sqlite_store::finish_workflow(const std::string& id, node_state state, const value& result,
                                             const value& error, epoch_ms at) {
  auto packed_result = pack_column(result);
  auto packed_error = pack_column(error);
  return impl_->update(
      impl_->finish_workflow.get(),
      [&](binder& b) { b.text(id).state(state).packed(packed_result).packed(packed_error).integer(at); },
      [&id] { return "finish workflow " + id; });
}

expected<void> sqlite_store::reopen_workflow(const std::string& id) {
  return impl_->update(
      impl_->reopen_workflow.get(), [&id](binder& b) { b.text(id).state(node_state::started); },
      [&id] { return "reopen workflow " + id; });
}

expected<void> sqlite_store::upsert_node(const node_record& n) {
  auto result = pack_column(n.result);
  auto err = pack_column(n.error);
  return impl_->write(
      impl_->upsert_node.get(),
      [&](binder& b) {
        b.text(n.workflow_id)
            .integer(n.node)
            .text(n.task)
            .state(n.state)
            .integer(n.attempt)
            .packed(result)
            .packed(err)
            .integer(n.due_at)
            .integer(n.updated_at)
            .integer(n.retry_base);
      },
      [&n] { return "upsert node " + std::to_string(n.node) + " of workflow " + n.workflow_id; });
}

expected<void> sqlite_store::upsert_progress(const progress_record& p) {
  const auto& r = p.progress;
  return impl_->write(
      impl_->upsert_progress.get(),
      [&](binder& b) {
        b.text(p.workflow_id).integer(p.node).text(p.task).integer(p.attempt);
        r.done ? b.integer(*r.done) : b.null();
        r.total ? b.integer(*r.total) : b.null();
        b.text(r.message);
        r.state.empty() ? b.null() : b.text(r.state);
        b.integer(p.updated_at);
      },
      [&p] { return "store progress of node " + std::to_string(p.node) + " of workflow " + p.workflow_id; });
}

expected<void> sqlite_store::insert_attempt(const attempt_record& a) {
  return impl_->write(
      impl_->insert_attempt.get(),
      [&a](binder& b) {
        b.text(a.workflow_id)
            .integer(a.node)
            .integer(a.attempt)
            .text(a.error_type)
            .text(a.error_message)
            .integer(a.finished_at);
      },
      [&a] {
        return "insert attempt " + std::to_string(a.attempt) + " of node " + std::to_string(a.node) + " of workflow " +
               a.workflow_id;
      });
}

expected<void> sqlite_store::insert_replacement(const replacement_record& r) {
  auto packed_canvas = pack_column(r.canvas);
  return impl_->write(
      impl_->insert_replacement.get(),
      [&](binder& b) {
        b.text(r.workflow_id).integer(r.node).integer(r.attempt).integer(r.first_node).packed(packed_canvas);
        b.integer(r.created_at);
      },
      [&r] { return "insert replacement of node " + std::to_string(r.node) + " of workflow " + r.workflow_id; });
}

expected<std::vector<replacement_record>> sqlite_store::replacements_of(const std::string& workflow_id) {
  return impl_->query<std::vector<replacement_record>>(
      impl_->replacements_of.get(), [&workflow_id](binder& b) { b.text(workflow_id); }, read_replacement,
      [&workflow_id] { return "read replacements of workflow " + workflow_id; });
}

expected<void> sqlite_store::put_idempotency_key(const std::string& key, const value& result,
                                                 const std::string& workflow_id, std::int32_t node, epoch_ms at) {
  auto packed_result = pack_column(result);
  return impl_->write(
      impl_->put_idempotency_key.get(),
      [&](binder& b) { b.text(key).packed(packed_result).text(workflow_id).integer(node).integer(at); },
      [&key] { return "record idempotency key '" + key + "'"; });
}

expected<std::int64_t> sqlite_store::insert_dead_letter(const dead_letter_record& d) {
  auto done = impl_->write(
      impl_->insert_dead_letter.get(),
      [&d](binder& b) {
        b.text(d.message_id)
            .text(d.workflow_id)
            .integer(d.node)
            .text(d.task)
            .text(d.reason)
            .text(d.error)
            .integer(d.attempts)
            .blob(d.envelope)
            .integer(d.created_at)
            .integer(d.replayed_at);
      },
      [&d] { return "insert dead letter for message '" + d.message_id + "' (reason " + d.reason + ")"; });
  if (!done) {
    return done.error();
  }
  return static_cast<std::int64_t>(sqlite3_last_insert_rowid(impl_->db.get()));
}

expected<void> sqlite_store::mark_dead_letter_replayed(std::int64_t id, epoch_ms at) {
  return impl_->update(
      impl_->mark_dead_letter_replayed.get(), [id, at](binder& b) { b.integer(id).integer(at); },
      [id] { return "mark dead letter " + std::to_string(id) + " replayed"; });
}

expected<std::optional<workflow_record>> sqlite_store::find_workflow(const std::string& id) {
  return impl_->query<std::optional<workflow_record>>(
      impl_->find_workflow.get(), [&id](binder& b) { b.text(id); }, read_workflow,
      [&id] { return "find workflow " + id; });
}

expected<std::optional<workflow_record>> sqlite_store::find_workflow_by_key(const std::string& submit_key) {
  return impl_->query<std::optional<workflow_record>>(
      impl_->find_workflow_by_key.get(), [&submit_key](binder& b) { b.text(submit_key); }, read_workflow,
      [&submit_key] { return "find workflow by submit key '" + submit_key + "'"; });
}

expected<std::vector<workflow_record>> sqlite_store::unfinished_workflows() {
  return impl_->query<std::vector<workflow_record>>(
      impl_->unfinished_workflows.get(), no_parameters, read_workflow,
      [this] { return "list unfinished workflows of store '" + impl_->path + "'"; });
}

expected<std::vector<workflow_summary>> sqlite_store::recent_workflows(std::size_t limit,
                                                                       std::optional<node_state> state,
                                                                       const std::optional<workflow_cursor>& after) {
  // SQLite reads a negative LIMIT as none; a size_t past INT64_MAX is one.
  auto bound = static_cast<std::int64_t>(limit);
  auto wanted = state ? static_cast<std::int64_t>(*state) : std::int64_t{-1};
  return impl_->query<std::vector<workflow_summary>>(
      impl_->recent_workflows.get(),
      [&](binder& b) {
        b.integer(bound).integer(wanted);
        if (after) {
          b.integer(after->created_at).text(after->id);
        } else {
          b.null().null();
        }
      },
      read_workflow_summary, [this] { return "list recent workflows of store '" + impl_->path + "'"; });
}

expected<std::vector<node_record>> sqlite_store::nodes_of(const std::string& workflow_id) {
  return impl_->query<std::vector<node_record>>(
      impl_->nodes_of.get(), [&workflow_id](binder& b) { b.text(workflow_id); }, read_node,
      [&workflow_id] { return "read nodes of workflow " + workflow_id; });
}

expected<std::vector<progress_record>> sqlite_store::progress_of(const std::string& workflow_id) {
  return impl_->query<std::vector<progress_record>>(
      impl_->progress_of.get(), [&workflow_id](binder& b) { b.text(workflow_id); }, read_progress,
      [&workflow_id] { return "read progress of workflow " + workflow_id; });
}

expected<std::vector<attempt_record>> sqlite_store::attempts_of(const std::string& workflow_id) {
  return impl_->query<std::vector<attempt_record>>(
      impl_->attempts_of.get(), [&workflow_id](binder& b) { b.text(workflow_id); }, read_attempt,
      [&workflow_id] { return "read attempts of workflow " + workflow_id; });
}

expected<std::optional<value>> sqlite_store::find_idempotency_key(const std::string& key) {
  auto what = [&key] { return "idempotency key '" + key + "'"; };
  return impl_->query<std::optional<value>>(
      impl_->find_idempotency_key.get(), [&key](binder& b) { b.text(key); },
      [&what](sqlite3_stmt* stmt) { return column_value(stmt, 0, what); }, [&what] { return "find " + what(); });
}

expected<std::vector<dead_letter_record>> sqlite_store::dead_letters(bool include_replayed) {
  return impl_->query<std::vector<dead_letter_record>>(
      impl_->dead_letters.get(), [include_replayed](binder& b) { b.integer(include_replayed ? 1 : 0); },
      read_dead_letter, [this] { return "list dead letters of store '" + impl_->path + "'"; });
}

expected<std::optional<dead_letter_record>> sqlite_store::find_dead_letter(std::int64_t id) {
  return impl_->query<std::optional<dead_letter_record>>(
      impl_->find_dead_letter.get(), [id](binder& b) { b.integer(id); }, read_dead_letter,
      [id] { return "find dead letter " + std::to_string(id); });
}

}  // namespace trellis::detail
