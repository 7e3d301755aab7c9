#pragma once

/// @file
/// Internal to the command line: retention (docs/operations.md
/// "Retention"). The embedded commands' `--result-expires`,
/// `--idempotency-key-expires` and `--dead-letter-expires` flags, and the
/// commands that delete by hand: `prune (--db PATH | --broker URL)
/// [--older-than D]` (every workflow finished more than D ago) and
/// `forget ID (--db PATH | --broker URL)` (one finished workflow). With
/// `--db` they open the store as an engine without handlers, so the store
/// lock is taken as `run` takes it; with `--broker` they ask the running
/// dispatchers (every partition's for `prune`, the owner's for `forget`).
/// Either way the deletes are made by a dispatcher, the store's only writer.

#include "trellis/cluster_node.hpp"
#include "trellis/engine.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace trellis::cli {

/// The retention of an embedded engine, as its flags set it.
struct retention_settings {
  std::chrono::milliseconds result_expires = defaults::result_expires;
  std::chrono::milliseconds idempotency_key_expires = defaults::idempotency_key_expires;
  std::chrono::milliseconds dead_letter_expires = defaults::dead_letter_expires;

  /// Adds the three flags to `cmd`; a value that is not a duration
  /// (duration_text.hpp) is a usage error, exit 2.
  void add_flags(CLI::App* cmd);
  /// Copies the settings into `cfg`.
  void apply_to(engine_config& cfg) const;
};

/// `prune` and `forget`, registered on construction (the flags bind to
/// its members, so it stays where it was made).
class retention_commands {
 public:
  explicit retention_commands(CLI::App& app);
  retention_commands(const retention_commands&) = delete;
  retention_commands& operator=(const retention_commands&) = delete;

  /// The two commands, for the caller to add the cluster client flags to.
  CLI::App* prune_command() const noexcept { return prune_; }
  CLI::App* forget_command() const noexcept { return forget_; }
  /// The one of the two that was parsed, or null.
  CLI::App* parsed() const;
  /// Its `--db` option (the caller decides between it and `--broker`).
  CLI::Option* db_flag() const;

  /// Runs the parsed command on the store file (`cluster` unset) or over
  /// the broker and returns its exit code (0, 2 for bad input or a
  /// workflow that cannot be forgotten, 3 for a store that cannot be
  /// opened or refuses, 4 for a broker or dispatcher that cannot be
  /// asked). Prints one JSON line on success: {"pruned": N,
  /// "older_than": "1d"} or {"id": ID, "forgotten": true}.
  int run(const std::optional<detail::cluster_options>& cluster) const;

 private:
  int run_on_store() const;
  int run_over_broker(const detail::cluster_options& cluster) const;
  int print_pruned(std::int64_t n) const;
  int print_forgotten() const;

  CLI::App* prune_ = nullptr;
  CLI::App* forget_ = nullptr;
  std::string db_;
  std::string id_;
  std::chrono::milliseconds older_than_ = defaults::result_expires;
};

}  // namespace trellis::cli
