// The shared command-line front end (see trellis/cli_main.hpp and docs/cli.md).
// Each command maps failures to one documented exit code, and the last line a
// command prints on stdout is machine-readable JSON.

#include "trellis/cli_main.hpp"

#include "cli/cli_output.hpp"
#include "cli/cluster_settings.hpp"
#include "cli/control_commands.hpp"
#include "cli/list_command.hpp"
#include "cli/retention_commands.hpp"
#include "cli/progress_line.hpp"
#include "cli/schedule_commands.hpp"
#include "cli/serve_check.hpp"
#include "cli/waiting.hpp"
#include "cli/workflow_file.hpp"
#include "cli/serve_commands.hpp"

#include "trellis/client.hpp"
#include "trellis/cluster_node.hpp"
#include "trellis/defaults.hpp"
#include "trellis/engine.hpp"
#include "trellis/log.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/store/store_reports.hpp"
#include "trellis/submission.hpp"
#include "trellis/version.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <pthread.h>

namespace trellis {

namespace {

using cli::exit_bad_input;
using cli::exit_broker;
using cli::exit_code_for;
using cli::exit_store;
using cli::exit_success;
using cli::exit_terminated;
using cli::exit_workflow_failed;
using cli::json_string;
using cli::outcome_line;

/// Graceful stop on SIGTERM or SIGINT: drain the engine (running handlers
/// finish and their outcomes are committed), then exit. Unfinished workflows
/// stay in the store for `resume`. The signals are blocked (`block`) before
/// any engine starts threads, so only this watcher ever receives them; it is
/// declared after the engine it guards, so it stops watching first.
class termination_watch {
 public:
  static sigset_t signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    return set;
  }
  static void block() {
    auto set = signals();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
  }

  termination_watch(engine& eng, std::string db)
      : watcher_([this, &eng, db = std::move(db)] {
          auto set = signals();
          timespec tick{0, 100'000'000};
          while (!done_) {
            int sig = sigtimedwait(&set, nullptr, &tick);
            if (sig == SIGTERM || sig == SIGINT) {
              log::info() << "signal " << sig << ": draining; unfinished workflows stay in " << db
                          << " (finish them with: resume --db " << db << ")";
              eng.shutdown();
              std::cout.flush();
              std::_Exit(exit_terminated);
            }
          }
        }) {}
  ~termination_watch() {
    done_ = true;
    watcher_.join();
  }
  termination_watch(const termination_watch&) = delete;
  termination_watch& operator=(const termination_watch&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread watcher_;
};

/// The live progress line of workflow `id` of `eng` (its tasks: `total`, 0
/// when unknown), drawn when stderr is a terminal.
std::unique_ptr<cli::progress_line> progress_of(engine& eng, const std::string& id, std::size_t total) {
  return std::make_unique<cli::progress_line>(
      cli::stderr_is_terminal(),
      [&eng, id]() -> std::optional<value> {
        auto doc = eng.status(id);
        return doc ? std::optional<value>{std::move(*doc)} : std::nullopt;
      },
      total);
}

/// Waits for the workflow within `limit` and prints its outcome line;
/// returns its exit code. Without --timeout-ms there is no deadline: a
/// workflow with long retries legitimately takes long, and the caller can
/// interrupt; progress survives in the store.
int report(const workflow_handle& h, cli::wait_limit& limit, const std::string& db,
           cli::progress_line* progress = nullptr) {
  // At most five redraws a second.
  auto r = cli::wait_within(h, limit, progress, std::chrono::milliseconds{200});
  if (!r && r.error().code() == errc::timeout) {
    // The engine drains when the command returns: running handlers finish,
    // the rest of the workflow stays in the store for `resume`.
    return cli::report_timed_out(h.id(), limit,
                                 "running handlers finish, the rest stays in " + db + " for: resume --db " + db);
  }
  if (!r && exit_code_for(r.error().code()) == exit_store) {
    // The engine stopped on its store: no outcome to print, only the error.
    std::cerr << "error: " << to_string(r.error()) << "; workflow " << h.id()
              << " stays unfinished in the store (finish it with resume once the store is usable)" << std::endl;
    return exit_store;
  }
  auto state = h.state();
  std::cout << outcome_line(h.id(), state, r ? *r : value{}, h.error_details()) << std::endl;
  return state == node_state::success ? exit_success : exit_workflow_failed;
}

/// Options shared by the commands that run an engine.
struct run_options {
  std::string db = defaults::store_path;
  std::size_t concurrency = 0;
  std::size_t max_abandoned_handlers = defaults::max_abandoned_handlers;
  canvas_limits limits;
  /// --timeout-ms: how long to wait for the workflows (default: no limit).
  std::optional<std::int64_t> timeout_ms;
  /// run --key: an idempotent submission (engine::submit's key).
  std::optional<std::string> key;
  /// --result-expires, --idempotency-key-expires, --dead-letter-expires.
  cli::retention_settings retention;
};

engine_config config_for(const run_options& opts) {
  engine_config cfg;
  cfg.store_path = opts.db;
  cfg.concurrency = opts.concurrency;
  cfg.limits = opts.limits;
  cfg.max_abandoned_handlers = opts.max_abandoned_handlers;
  opts.retention.apply_to(cfg);
  return cfg;
}

int cmd_run(const std::string& file, const run_options& opts, task_registry tasks) {
  auto flow = cli::load_workflow_file(file, tasks, config_for(opts).limits);
  if (!flow) {
    std::cerr << "error: " << flow.error().message() << '\n';
    return exit_bad_input;
  }
  engine eng{config_for(opts), std::move(tasks)};
  termination_watch watch{eng, opts.db};
  // With --key a second run of the same key gets the first workflow (its
  // outcome at once when it finished) and starts nothing.
  auto h = eng.submit(*flow, opts.key);
  if (!h) {
    std::cerr << "error: " << to_string(h.error()) << '\n';
    return exit_code_for(h.error().code());
  }
  cli::announce_workflow(h->id(), "submitted");
  cli::wait_limit limit{opts.timeout_ms};
  auto progress = progress_of(eng, h->id(), flow->task_count());
  return report(*h, limit, opts.db, progress.get());
}

int cmd_resume(const run_options& opts, task_registry tasks) {
  engine eng{config_for(opts), std::move(tasks)};
  termination_watch watch{eng, opts.db};
  int code = exit_success;
  auto restored = eng.restored();
  for (const auto& h : restored) {
    cli::announce_workflow(h.id(), "resumed");
  }
  cli::wait_limit limit{opts.timeout_ms};
  for (const auto& h : restored) {
    auto progress = progress_of(eng, h.id(), 0);
    auto one = report(h, limit, opts.db, progress.get());
    if (one == exit_store || one == cli::exit_timed_out) {
      return one;
    }
    if (one != exit_success) {
      code = exit_workflow_failed;
    }
  }
  return code;
}

std::unique_ptr<detail::sqlite_store> open_read_only(const std::string& db) {
  detail::store_options opts;
  opts.read_only = true;
  return detail::sqlite_store::open(db, opts);
}

template <class T>
T or_throw(expected<T> r) {
  if (!r) {
    throw setup_error(r.error().code(), r.error().message());
  }
  return std::move(*r);
}

int cmd_status(const std::string& id, const std::string& db, cli::output_format format) {
  auto store = open_read_only(db);
  auto doc = or_throw(detail::status_document(*store, id));
  if (!doc) {
    std::cerr << "error: no workflow with id " << id << " in " << db << '\n';
    return exit_bad_input;
  }
  std::cout << (format == cli::output_format::table ? cli::status_table(*doc) : cli::status_line(*doc) + '\n')
            << std::flush;
  return exit_success;
}

int cmd_dlq_list(const std::string& db, cli::output_format format) {
  auto store = open_read_only(db);
  auto rows = or_throw(detail::dead_letter_rows(*store));
  if (format == cli::output_format::table) {
    std::cout << cli::dead_letter_table(rows);
  } else {
    for (const auto& row : rows) {
      std::cout << to_json(row) << '\n';
    }
  }
  std::cout.flush();
  return exit_success;
}

int cmd_dlq_replay(std::int64_t id, const run_options& opts, task_registry tasks) {
  engine eng{config_for(opts), std::move(tasks)};
  termination_watch watch{eng, opts.db};
  auto h = eng.replay_dead_letter(id);
  if (!h) {
    std::cerr << "error: " << to_string(h.error()) << '\n';
    return exit_code_for(h.error().code());
  }
  cli::announce_workflow(h->id(), "reopened by the replay of dead letter " + std::to_string(id));
  cli::wait_limit limit{opts.timeout_ms};
  auto progress = progress_of(eng, h->id(), 0);
  return report(*h, limit, opts.db, progress.get());
}

int cmd_revoke(const std::string& id, const revoke_options& what, const std::string& db) {
  // No handlers: nothing of the store's other workflows runs while the
  // engine is open for the revoke. A store a running engine holds is locked.
  engine_config cfg;
  cfg.store_path = db;
  engine eng{cfg, task_registry{}};
  auto answer = eng.revoke(id, what);
  if (!answer) {
    std::cerr << "error: " << to_string(answer.error()) << '\n';
    return exit_code_for(answer.error().code());
  }
  auto line = cli::revoke_line(id, *answer);
  if (!line) {
    std::cerr << "error: the dispatcher's revoke answer is neither an outcome nor a list of revoked nodes\n";
    return exit_store;
  }
  std::cout << *line << std::endl;
  return exit_success;
}

/// The flags of one cluster command, bound to the settings table
/// (cli/cluster_settings.hpp); only those given on the command line count.
struct cluster_flags {
  detail::cluster_command command;
  std::map<std::string, std::string> values;
  std::map<std::string, CLI::Option*> options;
  std::string config;

  void add_to(CLI::App* cmd) {
    cmd->add_option("--config", config, "Config file (TOML subset) [env TRELLIS_CONFIG]")->type_name("FILE");
    for (const auto& s : detail::cluster_settings()) {
      if (s.used_by(command) && *s.value_name == '\0') {
        const std::string help = detail::help_text(s);
        options[s.key] = cmd->add_flag(s.flag, help);
      } else if (s.used_by(command)) {
        auto* option = cmd->add_option(s.flag, values[s.key], detail::help_text(s));
        option->type_name(s.value_name);
        if (std::string{s.key} == "queues" || std::string{s.key} == "owns") {
          // `--queues a,b` and `--queues a --queues b` both list queues (and partitions).
          option->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::Join);
        }
        options[s.key] = option;
      }
    }
  }

  detail::cluster_inputs inputs() const {
    detail::cluster_inputs in;
    for (const auto& [key, option] : options) {
      if (option->count() > 0) {
        in.flags[key] = values.count(key) != 0 ? values.at(key) : "true";  // a switch has no value
      }
    }
    in.config_flag = config;
    in.getenv = [](const char* name) -> const char* { return std::getenv(name); };
    return in;
  }

  /// Flag > environment > config file > default; a bad value is bad input.
  detail::cluster_options resolve() const {
    auto resolved = detail::resolve_cluster_options(command, inputs());
    if (!resolved) {
      throw setup_error(resolved.error().code(), resolved.error().message());
    }
    return std::move(*resolved);
  }
};

/// `--log-level` and `--log-format` of a command without the cluster
/// settings (run, resume, dlq replay): flag > environment > default.
struct log_flags {
  std::map<std::string, std::string> values;
  std::map<std::string, CLI::Option*> options;

  void add_to(CLI::App* cmd) {
    for (const auto& s : detail::cluster_settings()) {
      if (std::string{s.key} == "log_level" || std::string{s.key} == "log_format") {
        options[s.key] = cmd->add_option(s.flag, values[s.key], detail::help_text(s))->type_name(s.value_name);
      }
    }
  }

  detail::cluster_inputs inputs() const {
    detail::cluster_inputs in;
    for (const auto& [key, option] : options) {
      if (option->count() > 0) {
        in.flags[key] = values.at(key);
      }
    }
    in.getenv = [](const char* name) -> const char* { return std::getenv(name); };
    return in;
  }
};

/// Sets up the process log before anything logs: the settings `in` give
/// (a bad value is bad input), the process named `trellis-<command>`.
void start_log(const detail::cluster_inputs& in, bool read_config, const std::string& command) {
  auto resolved = detail::resolve_log_options(in, read_config);
  if (!resolved) {
    throw setup_error(resolved.error().code(), resolved.error().message());
  }
  resolved->process = "trellis-" + command;
  log::configure(*resolved);
}

/// Runs a started cluster process until SIGTERM or SIGINT (blocked by the
/// caller before any thread started), then drains it.
int serve(expected<std::unique_ptr<detail::cluster_node>> node, const std::string& what) {
  if (!node) {
    std::cerr << "error: " << to_string(node.error()) << '\n';
    return exit_code_for(node.error().code());
  }
  log::info() << what << " running";
  auto set = termination_watch::signals();
  int sig = 0;
  // Every 100 ms between waits for a signal: a standby dispatcher retries
  // the store locks it waits for, and every process learns whether one of
  // its dispatchers stopped on a failed store (then it exits 3).
  for (bool announced = false;;) {
    auto waiting = (*node)->take_over();
    if (!waiting) {
      std::cerr << "error: " << to_string(waiting.error()) << '\n';
      (*node)->shutdown();
      return exit_code_for(waiting.error().code());
    }
    if (*waiting > 0 && !announced) {
      announced = true;
      log::info() << what << " standing by: " << *waiting
                  << " owned partition(s) are served by another dispatcher; taking over when it stops";
    }
    timespec pause{0, 100'000'000};
    if (int got = sigtimedwait(&set, nullptr, &pause); got > 0) {
      sig = got;
      break;
    }
  }
  log::info() << "signal " << sig << ": draining the " << what;
  (*node)->shutdown();
  std::cout.flush();
  return exit_terminated;
}

int cmd_submit(const std::string& file, const detail::cluster_options& opts, bool wait,
               const std::optional<std::string>& key, std::optional<std::int64_t> timeout_ms,
               const task_registry& tasks) {
  auto flow = cli::load_workflow_file(file, tasks, opts.limits, !tasks.empty());
  if (!flow) {
    std::cerr << "error: " << flow.error().message() << '\n';
    return exit_bad_input;
  }
  if (auto ok = detail::check_priorities_honoured(*flow, false); !ok) {
    std::cerr << "error: " << file << ": " << ok.error().message() << '\n';
    return exit_bad_input;
  }
  auto client = cli::connect_trellis_client(opts, "trellis-submit");
  if (!client) {
    std::cerr << "error: " << to_string(client.error()) << '\n';
    return exit_code_for(client.error().code());
  }
  // To the dispatcher owning the workflow's partition, signed when the
  // options carry a key. The handle listens for the outcome before the
  // submission goes out; with --key the id is the key's
  // (trellis::workflow_id_for_key) and a second submission gets the first
  // workflow.
  auto handle = (*client)->submit(*flow, key);
  if (!handle) {
    switch (handle.error().code()) {
      case errc::invalid_workflow:  // the dispatcher refused it
        std::cerr << "error: " << handle.error().message() << '\n';
        return exit_bad_input;
      case errc::malformed_envelope:  // an answer that cannot be read
        std::cerr << "error: " << handle.error().message() << '\n';
        return exit_broker;
      default:
        std::cerr << "error: " << to_string(handle.error()) << '\n';
        return exit_code_for(handle.error().code());
    }
  }
  if (!wait) {
    std::cout << "{\"id\":" << json_string(handle->id()) << "}" << std::endl;
    return exit_success;
  }
  cli::announce_workflow(handle->id(), "submitted");
  cli::wait_limit limit{timeout_ms};
  // About once a second: each redraw asks the owning dispatcher.
  cli::progress_line progress{cli::stderr_is_terminal(),
                              [&client, id = handle->id()]() -> std::optional<value> {
                                auto doc = (*client)->status(id);
                                return doc ? std::optional<value>{std::move(*doc)} : std::nullopt;
                              },
                              flow->task_count()};
  // A workflow that did not finish within a second may wait for a worker
  // nobody runs: say so (inspect's answers, gathered for a second).
  cli::slow_wait_check slow{std::chrono::seconds{1}, [&opts, needs = cli::needed_tasks(*flow, tasks)] {
                              cli::warn_unserved(opts, needs, std::chrono::seconds{1});
                            }};
  return cli::report_outcome(*handle, limit, &progress, &slow);
}

}  // namespace

int cli_main(int argc, char** argv, task_registry tasks) {
  CLI::App app{"Trellis: durable chain/group/chord workflows"};
  app.require_subcommand(1);
  // The same line from every binary built on cli_main (trellis, trellis-demo,
  // an application's own): the library's version, which is what it runs.
  app.set_version_flag("--version", std::string{"trellis "} + TRELLIS_VERSION, "Print the Trellis version and exit");
  run_options opts;
  std::string& db = opts.db;
  // `sizes`: the size limits and the abandoned-handler bound too (run and
  // resume; dlq replay takes the cluster's size flags when it asks a
  // dispatcher, and its limits are the store's anyway).
  auto engine_flags = [&](CLI::App* cmd, bool sizes) {
    cmd->add_option(
           "--concurrency", opts.concurrency,
           "Handler threads, 1 to " + std::to_string(defaults::max_concurrency) + " (default: one per hardware thread)")
        ->check(CLI::Range(std::size_t{1}, defaults::max_concurrency));
    if (!sizes) {
      return;
    }
    opts.retention.add_flags(cmd);
    cmd->add_option("--max-abandoned-handlers", opts.max_abandoned_handlers,
                    "Handlers left running past their hard time limit before no new task starts until one "
                    "returns, 1 to " +
                        std::to_string(defaults::max_concurrency) +
                        " (default: " + std::to_string(defaults::max_abandoned_handlers) + ")")
        ->check(CLI::Range(std::size_t{1}, defaults::max_concurrency));
    // The size limits, named and ranged as the cluster settings name them.
    for (auto [flag, limit, help] :
         {std::tuple{"--max-submission-bytes", &opts.limits.max_submission_bytes, "Largest workflow, encoded"},
          std::tuple{"--max-argument-bytes", &opts.limits.max_argument_bytes,
                     "Largest arguments of one task (its input from a previous step included), encoded"},
          std::tuple{"--max-result-bytes", &opts.limits.max_result_bytes, "Largest result of one task, encoded"}}) {
      cmd->add_option(flag, *limit,
                      std::string{help} + ", 1 to " + std::to_string(defaults::max_configurable_bytes) +
                          " (default: " + std::to_string(*limit) + ")")
          ->type_name("BYTES")
          ->check(CLI::Range(std::size_t{1}, defaults::max_configurable_bytes));
    }
  };

  std::map<CLI::App*, log_flags> embedded_log;
  std::string file;
  auto* run = app.add_subcommand("run", "Run a workflow file embedded and print its outcome as JSON");
  run->add_option("FILE", file, "Workflow file (JSON)")->required();
  run->add_option("--db", db, "SQLite store")->capture_default_str();
  engine_flags(run, true);
  std::string run_key;
  auto* run_key_flag = run->add_option(
      "--key", run_key,
      "Idempotent submission: a second run with the same KEY on the same store gets the first workflow");

  auto* resume = app.add_subcommand("resume", "Finish every unfinished workflow in the store");
  resume->add_option("--db", db, "SQLite store")->required();
  engine_flags(resume, true);

  // Long-running: an embedded engine, a cluster namespace's dashboard.
  std::string http_listen;
  std::string http_token_file;
  auto* serve_cmd = app.add_subcommand(
      "serve", "Run the embedded engine until SIGTERM: finish unfinished workflows, serve HTTP with --http");
  serve_cmd->add_option("--db", db, "SQLite store")->required();
  engine_flags(serve_cmd, true);
  auto* dashboard =
      app.add_subcommand("dashboard", "Serve a cluster namespace's JSON API, task events and dashboard over HTTP");
  for (auto* cmd : {serve_cmd, dashboard}) {
    auto* listen = cmd->add_option("--http", http_listen,
                                   "HOST:PORT to serve /metrics, /healthz, /readyz, the JSON API, task events and "
                                   "the dashboard on (loopback unless a token is set; port 0: any free port)");
    if (cmd == dashboard) {
      listen->required();
    }
    cmd->add_option("--http-token-file", http_token_file,
                    "File holding the bearer token revoke and replay require (or set TRELLIS_HTTP_TOKEN; needed "
                    "to listen off loopback)");
  }

  std::string id;
  auto* status = app.add_subcommand("status", "Show a workflow's state, result, error and nodes");
  status->add_option("ID", id, "Workflow id")->required();
  auto* status_db = status->add_option("--db", db, "SQLite store (or ask a running dispatcher: --broker)");

  auto* dlq = app.add_subcommand("dlq", "List or replay dead letters");
  dlq->require_subcommand(1);
  auto* dlq_list = dlq->add_subcommand("list", "List dead letters, one JSON object per line");
  auto* dlq_list_db = dlq_list->add_option("--db", db, "SQLite store (or ask a running dispatcher: --broker)");
  std::int64_t dead_letter_id = 0;
  auto* dlq_replay = dlq->add_subcommand("replay", "Run a dead-lettered node again and print the outcome");
  dlq_replay->add_option("ID", dead_letter_id, "Dead letter id")->required();
  auto* dlq_replay_db = dlq_replay->add_option("--db", db, "SQLite store (or ask a running dispatcher: --broker)");
  engine_flags(dlq_replay, false);

  auto* list = app.add_subcommand("list", "List the recent workflows, newest first, one JSON object per line");
  auto* list_db =
      list->add_option("--db", db, "SQLite store (read-only: works beside a running engine; or a cluster: --broker)");
  cli::list_options listing;
  std::string list_state;
  list->add_option("--state", list_state,
                   "Only workflows in this state: PENDING, STARTED, SUCCESS, FAILURE or REVOKED (any case)");
  list->add_option("--limit", listing.limit, "At most this many, 1 to " + std::to_string(cli::max_list_limit))
      ->check(CLI::Range(std::size_t{1}, cli::max_list_limit))
      ->capture_default_str();
  cli::retention_commands retention{app};  // prune, forget

  // -o on the commands a person reads: after `status` and `dlq list` exist.
  std::string output_name = "json";
  for (auto* cmd : {list, status, dlq_list}) {
    cmd->add_option("-o,--output", output_name, "json (one object per line) or table (for a person)")
        ->check(CLI::IsMember({"json", "table"}))
        ->capture_default_str();
  }

  cluster_flags worker_flags{detail::cluster_command::worker, {}, {}, {}};
  auto* worker = app.add_subcommand("worker", "Run task handlers for a cluster (NATS JetStream) until SIGTERM");
  worker_flags.add_to(worker);

  cluster_flags dispatcher_flags{detail::cluster_command::dispatcher, {}, {}, {}};
  for (auto* cmd : {run, resume, serve_cmd, dlq_replay}) {
    embedded_log[cmd].add_to(cmd);
  }

  auto* dispatcher = app.add_subcommand("dispatcher", "Run the dispatcher of a cluster, owning the store");
  dispatcher_flags.add_to(dispatcher);
  bool standby = false;
  dispatcher->add_flag("--standby", standby,
                       "Wait for another dispatcher holding an owned partition's store to stop, then take over "
                       "(default: exit 3)");

  bool wait = false;
  auto* submit = app.add_subcommand("submit", "Submit a workflow file to a cluster dispatcher over NATS");
  submit->add_option("FILE", file, "Workflow file (JSON)")->required();
  cluster_flags submit_flags{detail::cluster_command::submit, {}, {}, {}};
  submit_flags.add_to(submit);
  submit->add_flag("--wait", wait, "Wait for the outcome and print it as `run` does");
  std::string submit_key;
  submit->add_option("--key", submit_key,
                     "Idempotent submission: the workflow id is derived from the namespace and KEY, and a second "
                     "submission with the same key gets the first workflow");

  // Control over the broker (docs/cluster.md "Control"): the store commands
  // ask the running dispatcher with --broker instead of opening --db. They
  // take a client's settings, as `submit` does.
  std::map<CLI::App*, cluster_flags> client_flags;
  auto* inspect = app.add_subcommand("inspect", "List the live workers and dispatchers of a cluster as JSON lines");
  auto* metrics =
      app.add_subcommand("metrics", "Print the metrics of every live process of a cluster as Prometheus text");
  auto* revoke = app.add_subcommand("revoke", "Revoke an unfinished workflow, or one node of it: it ends REVOKED");
  revoke->add_option("ID", id, "Workflow id")->required();
  auto* revoke_db = revoke->add_option("--db", db, "SQLite store of a stopped engine (or a running dispatcher: --broker)");
  std::int32_t revoke_node = 0;
  auto* revoke_node_flag =
      revoke->add_option("--node", revoke_node, "Revoke this node only (as `status` lists them), 0 to 2147483647")
          ->check(CLI::Range(0, INT32_MAX));
  bool terminate = false;
  revoke->add_flag("--terminate", terminate,
                   "Also stop the handlers running the revoked tasks (their stop token now, abandoned after a grace "
                   "period if they have a hard time limit)");
  for (auto* cmd : {list, status, dlq_list, dlq_replay, inspect, metrics, revoke, dashboard,
                    retention.prune_command(), retention.forget_command()}) {
    client_flags.emplace(cmd, cluster_flags{detail::cluster_command::submit, {}, {}, {}}).first->second.add_to(cmd);
  }
  int partition = 0;
  for (auto* cmd : {dlq_list, dlq_replay}) {
    cmd->add_option("--partition", partition,
                    "With --broker: the partition whose dispatcher holds the letters, 0 to 1023")
        ->check(CLI::Range(0, 1023))
        ->capture_default_str();
  }
  std::string metrics_format_name = "prometheus";
  metrics
      ->add_option("--format", metrics_format_name,
                   "prometheus (text 0.0.4) or openmetrics (OpenMetrics 1.0 text, ending in # EOF)")
      ->check(CLI::IsMember({"prometheus", "openmetrics"}))
      ->capture_default_str();
  // --timeout-ms on the commands that wait for workflows: no limit unless given.
  std::int64_t wait_ms = 0;
  std::map<CLI::App*, CLI::Option*> wait_flags;
  for (auto* cmd : {run, resume, submit, dlq_replay}) {
    wait_flags[cmd] = cmd->add_option("--timeout-ms", wait_ms,
                                      "Wait at most MS for the workflow, then print its id and exit 6 (it goes on), "
                                      "1 to 2147483647 (default: no limit)")
                          ->check(CLI::Range(std::int64_t{1}, std::int64_t{INT32_MAX}));
  }
  std::int64_t inspect_ms = 1000;
  for (auto* cmd : {inspect, metrics}) {
    cmd->add_option("--timeout-ms", inspect_ms, "How long to collect answers, 1 to 60000 ms")
        ->check(CLI::Range(std::int64_t{1}, std::int64_t{60'000}))
        ->capture_default_str();
  }

  cli::schedule_commands schedules{app};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto code = app.exit(e);
    return code == 0 ? exit_success : exit_bad_input;
  }

  auto output = output_name == "table" ? cli::output_format::table : cli::output_format::json;
  for (const auto& [cmd, flag] : wait_flags) {
    if (*cmd && flag->count() > 0) {
      opts.timeout_ms = wait_ms;
    }
  }

  // Exactly one of --db (a store file) and --broker (a running dispatcher).
  // TRELLIS_BROKER or a config file's broker count as --broker.
  auto store_or_broker = [&](CLI::App* cmd, CLI::Option* db_flag) {
    bool broker_flag = cmd->get_option("--broker")->count() > 0;
    const char* env = std::getenv("TRELLIS_BROKER");
    bool broker = broker_flag || (env != nullptr && *env != '\0') || cmd->get_option("--config")->count() > 0 ||
                  std::getenv("TRELLIS_CONFIG") != nullptr;
    if (db_flag->count() > 0 && broker_flag) {
      throw usage_error("pass either --db PATH (a store file) or --broker URL (a running dispatcher), not both");
    }
    if (db_flag->count() == 0 && !broker) {
      throw usage_error("pass --db PATH (a store file) or --broker URL (a running dispatcher; or set TRELLIS_BROKER)");
    }
    return db_flag->count() > 0;
  };
  bool replay_from_store = false;
  if (*dlq_replay) {
    try {
      replay_from_store = store_or_broker(dlq_replay, dlq_replay_db);
    } catch (const usage_error& e) {
      std::cerr << "error: " << e.what() << '\n';
      return exit_bad_input;
    }
  }
  bool runs_engine = *run || *resume || *serve_cmd || (*dlq_replay && replay_from_store);
  if (runs_engine && tasks.empty()) {
    // Without handlers nothing could make progress and the command would
    // wait forever.
    std::cerr << "error: this binary registers no task handlers; run workflows with your application's binary "
                 "(for the demo tasks: trellis-demo)\n";
    return exit_bad_input;
  }
  if (runs_engine) {
    // Before any engine thread exists, so that only the watcher sees them.
    termination_watch::block();
  }
  try {
    // The log first, so that every line has its format: the cluster
    // processes from their settings, the embedded commands from their flags,
    // the others from the environment.
    std::string command_name = "trellis";
    for (const auto* cmd : app.get_subcommands()) {
      command_name = cmd->get_name();
    }
    if (*worker || *dispatcher) {
      start_log((*worker ? worker_flags : dispatcher_flags).inputs(), true, command_name);
    } else if (*run || *resume || *serve_cmd || *dlq_replay) {
      start_log(embedded_log.at(*run      ? run
                                : *resume ? resume
                                : *serve_cmd ? serve_cmd
                                          : dlq_replay)
                    .inputs(),
                false, *dlq_replay ? std::string{"dlq-replay"} : command_name);
    } else {
      start_log(log_flags{}.inputs(), false, command_name);
    }
    if (schedules.chosen()) {
      return schedules.run(tasks);
    }
    if (*worker) {
      termination_watch::block();  // before any thread exists, so that only serve() sees them
      return serve(detail::cluster_node::start_worker(worker_flags.resolve(), std::move(tasks)), "worker");
    }
    if (*dispatcher) {
      termination_watch::block();
      auto options = dispatcher_flags.resolve();
      options.standby = standby;
      return serve(detail::cluster_node::start_dispatcher(options, tasks), "dispatcher");
    }
    if (*submit) {
      auto* key_flag = submit->get_option("--key");
      if (key_flag->count() > 0 && submit_key.empty()) {
        throw usage_error("--key: an empty key names no submission");
      }
      if (opts.timeout_ms && !wait) {
        std::cerr << "error: --timeout-ms bounds the wait: it needs --wait\n";
        return exit_bad_input;
      }
      return cmd_submit(file, submit_flags.resolve(), wait,
                        key_flag->count() > 0 ? std::optional<std::string>{submit_key} : std::nullopt, opts.timeout_ms,
                        tasks);
    }
    if (*run) {
      if (run_key_flag->count() > 0) {
        if (run_key.empty()) {
          throw usage_error("--key: an empty key names no submission");
        }
        opts.key = run_key;
      }
      return cmd_run(file, opts, std::move(tasks));
    }
    if (*resume) {
      return cmd_resume(opts, std::move(tasks));
    }
    if (*serve_cmd) {
      auto cfg = config_for(opts);
      cfg.http = http_options{http_listen, cli::http_token(http_token_file)};
      return cli::serve_embedded(cfg, std::move(tasks));
    }
    if (*dashboard) {
      termination_watch::block();  // before the connections start threads
      auto cluster = client_flags.at(dashboard).resolve();
      cluster.http = http_options{http_listen, cli::http_token(http_token_file)};
      return cli::serve_dashboard(cluster);
    }
    if (auto* cmd = retention.parsed()) {
      return retention.run(store_or_broker(cmd, retention.db_flag())
                               ? std::nullopt
                               : std::optional<detail::cluster_options>{client_flags.at(cmd).resolve()});
    }
    if (*list) {
      if (!list_state.empty()) {
        std::string upper = list_state;
        std::transform(upper.begin(), upper.end(), upper.begin(),
                       [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
        listing.state = node_state_from_string(upper);
        if (!listing.state) {
          throw usage_error("--state: '" + list_state +
                            "' is not a state: use PENDING, STARTED, SUCCESS, FAILURE or REVOKED");
        }
      }
      listing.format = output;
      return store_or_broker(list, list_db) ? cli::list_from_store(db, listing)
                                            : cli::list_over_broker(client_flags.at(list).resolve(), listing);
    }
    if (*status) {
      return store_or_broker(status, status_db)
                 ? cmd_status(id, db, output)
                 : cli::status_over_broker(id, client_flags.at(status).resolve(), output);
    }
    if (*dlq_list) {
      return store_or_broker(dlq_list, dlq_list_db)
                 ? cmd_dlq_list(db, output)
                 : cli::dlq_list_over_broker(partition, client_flags.at(dlq_list).resolve(), output);
    }
    if (*dlq_replay) {
      return replay_from_store ? cmd_dlq_replay(dead_letter_id, opts, std::move(tasks))
                               : cli::dlq_replay_over_broker(dead_letter_id, partition,
                                                             client_flags.at(dlq_replay).resolve(), opts.timeout_ms);
    }
    if (*inspect) {
      return cli::inspect_over_broker(client_flags.at(inspect).resolve(), std::chrono::milliseconds{inspect_ms});
    }
    if (*metrics) {
      return cli::metrics_over_broker(client_flags.at(metrics).resolve(), std::chrono::milliseconds{inspect_ms},
                                      metrics_format_name == "openmetrics" ? metrics_format::openmetrics
                                                                           : metrics_format::prometheus);
    }
    if (*revoke) {
      revoke_options what;
      if (revoke_node_flag->count() > 0) {
        what.node = revoke_node;
      }
      what.terminate = terminate;
      return store_or_broker(revoke, revoke_db) ? cmd_revoke(id, what, db)
                                                : cli::revoke_over_broker(id, what, client_flags.at(revoke).resolve());
    }
  } catch (const setup_error& e) {
    std::cerr << "error: " << to_string(e.code()) << ": " << e.what() << '\n';
    return e.code() == errc::invalid_config ? exit_bad_input : exit_store;
  } catch (const usage_error& e) {
    std::cerr << "error: " << e.what() << '\n';
    return exit_bad_input;
  }
  return exit_bad_input;
}

int worker_main(int argc, char** argv, task_registry tasks) {
  std::vector<char*> args{argv, argv + argc};
  static char worker_command[] = "worker";
  args.insert(args.begin() + (argc > 0 ? 1 : 0), worker_command);
  return cli_main(static_cast<int>(args.size()), args.data(), std::move(tasks));
}

}  // namespace trellis
