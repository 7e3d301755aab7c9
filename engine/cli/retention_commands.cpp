#include "cli/retention_commands.hpp"

#include "cli/cli_output.hpp"
#include "cli/control_commands.hpp"
#include "cli/duration_text.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <utility>

namespace trellis::cli {

namespace {

/// A CLI11 option that takes a duration into `target`.
CLI::Option* add_duration(CLI::App* cmd, const std::string& flag, std::chrono::milliseconds& target,
                          const std::string& help) {
  return cmd
      ->add_option_function<std::string>(
          flag,
          [&target, flag](const std::string& text) {
            auto d = parse_duration(text);
            if (!d) {
              throw CLI::ValidationError(flag, d.error().message());
            }
            target = *d;
          },
          help + " (default: " + duration_text(target) + ")")
      ->type_name("DURATION");
}

/// The engine `prune` and `forget` open: no handlers (nothing of the
/// store's other workflows runs meanwhile) and no retention of its own, so
/// it deletes only what the command asks for.
engine_config by_hand(const std::string& db) {
  engine_config cfg;
  cfg.store_path = db;
  cfg.result_expires = std::chrono::milliseconds{0};
  cfg.idempotency_key_expires = std::chrono::milliseconds{0};
  cfg.dead_letter_expires = std::chrono::milliseconds{0};
  return cfg;
}

int fail(const error& e) {
  std::cerr << "error: " << to_string(e) << '\n';
  return exit_code_for(e.code());
}

}  // namespace

void retention_settings::add_flags(CLI::App* cmd) {
  add_duration(cmd, "--result-expires", result_expires,
               "Delete a finished workflow, its nodes, attempts and result this long after it finished: 1d, 30m, "
               "3600s, 500ms, or 0 to keep forever");
  add_duration(cmd, "--idempotency-key-expires", idempotency_key_expires,
               "Delete an idempotency key this long after it was recorded (its step's effect may then happen "
               "again), or 0 to keep forever");
  add_duration(cmd, "--dead-letter-expires", dead_letter_expires,
               "Delete a dead letter this long after it was stored, or 0 to keep forever");
}

void retention_settings::apply_to(engine_config& cfg) const {
  cfg.result_expires = result_expires;
  cfg.idempotency_key_expires = idempotency_key_expires;
  cfg.dead_letter_expires = dead_letter_expires;
}

retention_commands::retention_commands(CLI::App& app) {
  prune_ = app.add_subcommand("prune",
                              "Delete every workflow that finished more than --older-than ago, with its nodes, "
                              "attempts and result");
  forget_ = app.add_subcommand("forget", "Delete one finished workflow, with its nodes, attempts and result");
  forget_->add_option("ID", id_, "Workflow id")->required();
  for (auto* cmd : {prune_, forget_}) {
    cmd->add_option("--db", db_,
                    "SQLite store no running process holds (or ask the running dispatchers: --broker)");
  }
  add_duration(prune_, "--older-than", older_than_, "Finished more than this long ago: 1d, 30m, 3600s, 500ms, 0");
}

CLI::App* retention_commands::parsed() const {
  return *prune_ ? prune_ : *forget_ ? forget_ : nullptr;
}

CLI::Option* retention_commands::db_flag() const {
  auto* cmd = parsed();
  return cmd == nullptr ? nullptr : cmd->get_option("--db");
}

int retention_commands::run(const std::optional<detail::cluster_options>& cluster) const {
  return cluster ? run_over_broker(*cluster) : run_on_store();
}

int retention_commands::run_on_store() const {
  // A missing file would be created empty by opening it: say so instead.
  if (std::FILE* f = std::fopen(db_.c_str(), "rb"); f != nullptr) {
    std::fclose(f);
  } else {
    std::cerr << "error: not_found: store '" << db_ << "' does not exist\n";
    return exit_store;
  }
  engine eng{by_hand(db_), task_registry{}};
  if (*prune_) {
    auto pruned = eng.prune(older_than_);
    return pruned ? print_pruned(*pruned) : fail(pruned.error());
  }
  auto forgotten = eng.forget(id_);
  return forgotten ? print_forgotten() : fail(forgotten.error());
}

int retention_commands::run_over_broker(const detail::cluster_options& cluster) const {
  auto c = connect_trellis_client(cluster, *prune_ ? "trellis-prune" : "trellis-forget");
  if (!c) {
    return fail(c.error());
  }
  if (*prune_) {
    auto pruned = (*c)->prune(older_than_);
    return pruned ? print_pruned(*pruned) : fail(pruned.error());
  }
  auto forgotten = (*c)->forget(id_);
  return forgotten ? print_forgotten() : fail(forgotten.error());
}

int retention_commands::print_pruned(std::int64_t n) const {
  std::cout << "{\"pruned\":" << n << ",\"older_than\":" << json_string(duration_text(older_than_)) << "}"
            << std::endl;
  return exit_success;
}

int retention_commands::print_forgotten() const {
  std::cout << "{\"id\":" << json_string(id_) << ",\"forgotten\":true}" << std::endl;
  return exit_success;
}

}  // namespace trellis::cli
