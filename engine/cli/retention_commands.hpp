#pragma once

/// @file
/// Internal to the command line: retention (docs/operations.md
/// "Retention"). The embedded commands' `--result-expires`,
/// `--idempotency-key-expires` and `--dead-letter-expires` flags, and the
/// commands that delete by hand: `prune --db PATH [--older-than D]`
/// (every workflow finished more than D ago) and `forget ID --db PATH`
/// (one finished workflow). Both open the store as an engine without
/// handlers, so the store lock is taken as `run` takes it and the deletes
/// are made by the dispatcher, the store's only writer.

#include "trellis/engine.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace CLI {
class App;
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

  /// Runs the command that was parsed and returns its exit code (0, 2 for
  /// bad input, 3 for a store that cannot be opened or refuses), or
  /// nullopt when neither was. Prints one JSON line on success:
  /// {"pruned": N, "older_than": "1d"} or {"id": ID, "forgotten": true}.
  std::optional<int> run() const;

 private:
  CLI::App* prune_ = nullptr;
  CLI::App* forget_ = nullptr;
  std::string db_;
  std::string id_;
  std::chrono::milliseconds older_than_ = defaults::result_expires;
};

}  // namespace trellis::cli
