#pragma once

/// @file
/// Internal to the store (engine/services/trellis/store/*.cpp only): the
/// SQLite C API wrapped for `sqlite_store` (RAII handles, a binder,
/// column readers, row readers) and the definition of `sqlite_store::impl`,
/// so that the store's parts live in files of their own. Nothing else
/// includes it: `sqlite_store.hpp` is the store's API.

#include "trellis/store/sqlite_store.hpp"

#include "trellis/store/store_schema.hpp"

#include "trellis/defaults.hpp"
#include "trellis/detail/value_codec.hpp"

#include <sqlite3.h>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trellis::detail {

inline constexpr int schema_version_of_this_build = static_cast<int>(std::size(store_migrations));

// The partial index and `unfinished_workflows` spell the terminal states as
// integers; they must stay the enumerators' values.
static_assert(static_cast<int>(node_state::success) == 3, "schema spells success as 3");
static_assert(static_cast<int>(node_state::failure) == 4, "schema spells failure as 4");
static_assert(static_cast<int>(node_state::revoked) == 6, "schema spells revoked as 6");

inline constexpr std::string_view application_name = "trellis";

/// Values are written by this build, but a damaged file must not blow the
/// stack (defaults::max_stored_value_depth).
inline constexpr std::size_t stored_value_max_depth = defaults::max_stored_value_depth;

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
inline std::optional<std::string> pack_column(const value& v) {
  if (v.is_nil()) {
    return std::nullopt;
  }
  return pack_to_string(v);
}

// -- errors ---------------------------------------------------------------------

inline errc code_of(int rc) noexcept {
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
inline error failure(sqlite3* db, int rc, const std::string& what) {
  const char* detail = db != nullptr && sqlite3_errcode(db) == rc ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return error{code_of(rc), what + ": " + detail};
}

[[noreturn]] inline void throw_setup(sqlite3* db, int rc, const std::string& what) {
  auto err = failure(db, rc, what);
  throw setup_error(err.code(), err.message());
}

// -- columns --------------------------------------------------------------------

inline std::string column_text(sqlite3_stmt* stmt, int col) {
  const auto* p = sqlite3_column_text(stmt, col);
  auto n = static_cast<std::size_t>(sqlite3_column_bytes(stmt, col));
  return p == nullptr ? std::string{} : std::string{reinterpret_cast<const char*>(p), n};
}

inline std::optional<std::string> column_optional_text(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
    return std::nullopt;
  }
  return column_text(stmt, col);
}

inline std::string column_blob(sqlite3_stmt* stmt, int col) {
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
inline statement_ptr prepare(sqlite3* db, std::string_view sql, const std::string& what, bool persistent = false) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), persistent ? SQLITE_PREPARE_PERSISTENT : 0,
                              &raw, nullptr);
  statement_ptr stmt{raw};
  if (rc != SQLITE_OK) {
    throw_setup(db, rc, what);
  }
  return stmt;
}

inline void exec(sqlite3* db, const std::string& sql, const std::string& what) {
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    throw_setup(db, rc, what);
  }
}

/// Runs a one-column query; `nullopt` when it returns no row.
inline std::optional<std::string> query_text(sqlite3* db, std::string_view sql, const std::string& what) {
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

inline std::int64_t query_int(sqlite3* db, std::string_view sql, const std::string& what) {
  auto stmt = prepare(db, sql, what);
  int rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) {
    throw_setup(db, rc == SQLITE_DONE ? SQLITE_ERROR : rc, what);
  }
  return sqlite3_column_int64(stmt.get(), 0);
}

inline bool is_memory_path(const std::string& path) { return path == ":memory:"; }

/// "FULL" or "NORMAL", in any case; anything else is a configuration error.
inline std::string synchronous_pragma(const std::string& setting) {
  std::string upper;
  for (char c : setting) {
    upper += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
  }
  if (upper != "FULL" && upper != "NORMAL") {
    throw setup_error(errc::store_failed, "store option synchronous must be FULL or NORMAL, not '" + setting + "'");
  }
  return "PRAGMA synchronous = " + upper;
}

inline constexpr std::string_view workflow_columns = "id, submit_key, state, canvas, result, error, created_at, finished_at";
inline constexpr std::string_view node_columns =
    "workflow_id, node, task, state, attempt, result, error, due_at, updated_at, retry_base";
inline constexpr std::string_view dead_letter_columns =
    "id, message_id, workflow_id, node, task, reason, error, attempts, envelope, created_at, replayed_at";

/// The parameter binding of a query that takes none.
inline void no_parameters(binder&) {}

/// How `impl::query` adds a row to what it returns.
template <class T>
void keep_row(std::vector<T>& rows, T row) {
  rows.push_back(std::move(row));
}

template <class T>
void keep_row(std::optional<T>& rows, T row) {
  rows = std::move(row);
}

inline std::string select_from(std::string_view columns, std::string_view rest) {
  std::string sql{"SELECT "};
  sql += columns;
  sql += ' ';
  sql += rest;
  return sql;
}

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
  // Retention (store_retention.cpp).
  statement_ptr expired_workflows;
  statement_ptr delete_finished_workflow;
  statement_ptr delete_nodes;
  statement_ptr delete_attempts;
  statement_ptr delete_progress;
  statement_ptr delete_replacements;
  statement_ptr prune_idempotency_keys;
  statement_ptr prune_dead_letters;

  void connect(const store_options& options);
  /// Checks that the file is empty or a Trellis store this build can read;
  /// returns whether it is empty.
  bool verify_identity();
  void migrate();
  void prepare_statements();
  /// The retention statements (store_retention.cpp), called by `prepare_statements`.
  void prepare_retention_statements();

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

// -- row readers ---------------------------------------------------------------------

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

inline expected<workflow_record> read_workflow(sqlite3_stmt* stmt) {
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

inline expected<workflow_summary> read_workflow_summary(sqlite3_stmt* stmt) {
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

inline expected<node_record> read_node(sqlite3_stmt* stmt) {
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

inline attempt_record read_attempt(sqlite3_stmt* stmt) {
  attempt_record a;
  a.workflow_id = column_text(stmt, 0);
  a.node = sqlite3_column_int(stmt, 1);
  a.attempt = sqlite3_column_int(stmt, 2);
  a.error_type = column_text(stmt, 3);
  a.error_message = column_text(stmt, 4);
  a.finished_at = sqlite3_column_int64(stmt, 5);
  return a;
}

inline std::optional<std::int64_t> column_optional_int(sqlite3_stmt* stmt, int col) {
  if (sqlite3_column_type(stmt, col) == SQLITE_NULL) {
    return std::nullopt;
  }
  return sqlite3_column_int64(stmt, col);
}

inline progress_record read_progress(sqlite3_stmt* stmt) {
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

inline expected<replacement_record> read_replacement(sqlite3_stmt* stmt) {
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

inline dead_letter_record read_dead_letter(sqlite3_stmt* stmt) {
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


}  // namespace trellis::detail
