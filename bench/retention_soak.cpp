/// @file
/// The retention soak (not a test: it asserts nothing): an embedded engine
/// on a real SQLite file runs many single-task workflows with a short
/// `result_expires`, and prints the store's size over time. With retention
/// working, the file (and its WAL) stops growing once the first workflows
/// expire: SQLite reuses the pages the dispatcher's sweeps free.
///
///   trellis_bench_retention_soak --workflows 1000000 --result-expires-ms 60000
///
/// Workflows are submitted in waves (`--wave`, each awaited before the
/// next), so the number in flight stays bounded and the finish times spread
/// over the run like a steady load. Every `--report-every-ms` one line:
/// elapsed seconds, workflows finished, store file bytes, WAL bytes, rows in
/// `workflows` (read through a separate read-only connection) and the
/// pruned-rows counter. The last line is a summary.

#include "trellis/trellis.hpp"

#include <sqlite3.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace {

std::uintmax_t size_of(const std::string& path) {
  std::error_code ec;
  auto n = std::filesystem::file_size(path, ec);
  return ec ? 0 : n;
}

std::int64_t workflow_rows(const std::string& db) {
  sqlite3* conn = nullptr;
  std::int64_t n = -1;
  if (sqlite3_open_v2(db.c_str(), &conn, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(conn, "SELECT count(*) FROM workflows", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      n = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(conn);
  return n;
}

/// `trellis_pruned_rows_total N` from the engine's metrics text.
std::string pruned_rows(trellis::engine& eng) {
  auto text = eng.metrics_text();
  const std::string name = "trellis_pruned_rows_total{queue=\"\",task=\"\"} ";
  auto at = text.find("\n" + name);
  if (at == std::string::npos) {
    return "0";
  }
  auto start = at + 1 + name.size();
  return text.substr(start, text.find('\n', start) - start);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Retention soak: single-task workflows with a short result_expires; prints the store size"};
  std::size_t workflows = 1'000'000;
  std::size_t wave = 2'000;
  std::int64_t expires_ms = 60'000;
  std::int64_t report_ms = 5'000;
  std::string db = (std::filesystem::temp_directory_path() / "trellis-retention-soak.db").string();
  std::string synchronous = "NORMAL";
  app.add_option("--workflows", workflows, "Workflows to run")->capture_default_str();
  app.add_option("--wave", wave, "Workflows submitted before waiting for them")->capture_default_str();
  app.add_option("--result-expires-ms", expires_ms, "result_expires in ms")->capture_default_str();
  app.add_option("--report-every-ms", report_ms, "How often to print a line")->capture_default_str();
  app.add_option("--db", db, "Store file (deleted first)")->capture_default_str();
  app.add_option("--synchronous", synchronous, "FULL or NORMAL")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  for (auto suffix : {"", "-wal", "-shm", ".lock"}) {
    std::filesystem::remove(db + suffix);
  }
  trellis::task_registry tasks;
  tasks.add_raw("soak.noop",
                [](trellis::task_context&, const trellis::value::array&) -> trellis::task_result<trellis::value> {
                  return trellis::value{};
                });
  trellis::engine_config cfg;
  cfg.store_path = db;
  cfg.synchronous = synchronous;
  cfg.result_expires = std::chrono::milliseconds{expires_ms};
  trellis::engine eng{cfg, std::move(tasks)};

  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  auto next_report = start;
  std::uintmax_t peak = 0;
  std::uintmax_t size_at_first_expiry = 0;
  auto seconds = [&] { return std::chrono::duration<double>(clock::now() - start).count(); };
  auto report = [&](std::size_t done) {
    auto file = size_of(db);
    auto wal = size_of(db + "-wal");
    peak = std::max(peak, file + wal);
    if (size_at_first_expiry == 0 && seconds() * 1000 >= static_cast<double>(expires_ms)) {
      size_at_first_expiry = file + wal;
    }
    std::cout << "t=" << static_cast<std::int64_t>(seconds()) << "s finished=" << done << " file=" << file
              << " wal=" << wal << " workflows_rows=" << workflow_rows(db) << " pruned_rows=" << pruned_rows(eng)
              << std::endl;
  };
  std::size_t done = 0;
  std::vector<trellis::workflow_handle> handles;
  handles.reserve(wave);
  const trellis::signature noop{"soak.noop"};
  while (done < workflows) {
    handles.clear();
    for (std::size_t i = 0; i < wave && done + i < workflows; ++i) {
      auto h = eng.submit(noop);
      if (!h) {
        std::cerr << "submit failed: " << to_string(h.error()) << '\n';
        return 1;
      }
      handles.push_back(std::move(*h));
    }
    for (auto& h : handles) {
      if (auto r = h.wait_for(std::chrono::minutes{10}); !r) {
        std::cerr << "workflow failed: " << to_string(r.error()) << '\n';
        return 1;
      }
    }
    done += handles.size();
    if (clock::now() >= next_report) {
      report(done);
      next_report = clock::now() + std::chrono::milliseconds{report_ms};
    }
  }
  report(done);
  auto final_size = size_of(db) + size_of(db + "-wal");
  std::cout << "summary: workflows=" << done << " seconds=" << static_cast<std::int64_t>(seconds())
            << " rate=" << static_cast<std::int64_t>(static_cast<double>(done) / seconds()) << "/s"
            << " result_expires_ms=" << expires_ms << " size_at_first_expiry=" << size_at_first_expiry
            << " peak=" << peak << " final=" << final_size << std::endl;
  return 0;
}
