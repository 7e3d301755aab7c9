#pragma once

/// @file
/// Reading a store that an engine or a `trellis-demo` process left behind (or
/// is still writing), without ever writing to it.

#include "trellis/store/sqlite_store.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace trellis::test {

/// Opens the store at `db` read-only through the store's own API. Throws
/// `setup_error` when it is not a readable Trellis store, which fails the test.
inline std::unique_ptr<detail::sqlite_store> open_store(const std::string& db) {
  detail::store_options opts;
  opts.read_only = true;
  return detail::sqlite_store::open(db, opts);
}

/// The one dead letter, replayed or not, in the store at `db`; a store that
/// cannot be read or holds another number of them fails the test.
inline detail::dead_letter_record only_dead_letter(const std::string& db) {
  auto letters = open_store(db)->dead_letters(true);
  REQUIRE(letters);
  REQUIRE(letters->size() == 1);
  return letters->front();
}

/// Runs `SELECT count(*) ...` on the store at `db` over a raw read-only
/// connection; nothing when it cannot be read (yet): not created, schema not
/// yet written, or locked past a short wait.
inline std::optional<std::int64_t> try_count(const std::string& db, const char* sql) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> conn{raw, sqlite3_close};
  if (rc != SQLITE_OK) {
    return std::nullopt;
  }
  sqlite3_busy_timeout(conn.get(), 1000);
  sqlite3_stmt* raw_stmt = nullptr;
  if (sqlite3_prepare_v2(conn.get(), sql, -1, &raw_stmt, nullptr) != SQLITE_OK) {
    return std::nullopt;
  }
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> stmt{raw_stmt, sqlite3_finalize};
  if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
    return std::nullopt;
  }
  return sqlite3_column_int64(stmt.get(), 0);
}

/// `try_count` on a store that must be readable now: one that cannot be
/// read fails the test, naming the query.
inline std::int64_t count_rows(const std::string& db, const std::string& sql) {
  auto n = try_count(db, sql.c_str());
  INFO("query: " << sql);
  REQUIRE(n);
  return *n;
}

}  // namespace trellis::test
