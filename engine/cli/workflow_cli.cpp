// The shared command-line front end (see trellis/cli_main.hpp and docs/cli.md).
// Each command maps failures to one documented exit code, and the last line a
// command prints on stdout is machine-readable JSON.

#include "trellis/cli_main.hpp"

#include "trellis/cluster_node.hpp"
#include "trellis/detail/value_codec.hpp"
#include "trellis/engine.hpp"
#include "trellis/envelope.hpp"
#include "trellis/store/sqlite_store.hpp"
#include "trellis/transport/nats_transport.hpp"

#include <CLI/CLI.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include <pthread.h>

namespace trellis {

namespace {

constexpr int exit_success = 0;
constexpr int exit_workflow_failed = 1;
constexpr int exit_bad_input = 2;
constexpr int exit_store = 3;
constexpr int exit_broker = 4;  // the NATS broker cannot be reached (cluster commands)
constexpr int exit_terminated = 143;  // 128 + SIGTERM, as shells report it

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
              std::cerr << "trellis: signal " << sig << ": draining; unfinished workflows stay in " << db
                        << " (finish them with: resume --db " << db << ")" << std::endl;
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

int exit_code_for(errc code) {
  switch (code) {
    case errc::store_corrupt:
    case errc::store_locked:
    case errc::store_failed:
      return exit_store;
    case errc::broker_unavailable:
    case errc::timeout:
      return exit_broker;
    default:
      return exit_bad_input;
  }
}

std::string json_string(const std::string& s) { return to_json(value(s)); }

/// The outcome line: {"id", "state", "result", "error"}, in that order.
std::string outcome_line(const std::string& id, node_state state, const value& result, const value& error) {
  std::string line = "{\"id\":" + json_string(id) + ",\"state\":\"" + std::string{to_string(state)} + "\"";
  line += ",\"result\":" + to_json(state == node_state::success ? result : value{});
  line += ",\"error\":" + to_json(state == node_state::success ? value{} : error);
  line += "}";
  return line;
}

/// Waits for the workflow and prints its outcome line; returns its exit code.
int report(const workflow_handle& h) {
  // No deadline: a workflow with long retries legitimately takes long, and
  // the caller can interrupt; progress survives in the store.
  auto r = h.wait_for(std::chrono::hours{24 * 365});
  auto state = h.state();
  std::cout << outcome_line(h.id(), state, r ? *r : value{}, h.error_details()) << std::endl;
  return state == node_state::success ? exit_success : exit_workflow_failed;
}

/// Reads and checks a workflow file; `check_tasks` false skips the check of
/// task names (a client without handlers leaves it to the dispatcher).
expected<canvas> load_workflow_file(const std::string& path, const task_registry& tasks, bool check_tasks = true) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    return error{errc::invalid_workflow, path + ": cannot be read"};
  }
  std::stringstream text;
  text << in.rdbuf();
  auto v = value_from_json(text.str());
  if (!v) {
    return error{errc::invalid_workflow, path + ": not valid JSON: " + v.error().message()};
  }
  auto c = canvas_from_value(*v);
  if (!c) {
    return error{errc::invalid_workflow, path + ": " + c.error().message()};
  }
  // Checked on the file's own shape, so the path names the place in the file.
  if (auto known = check_tasks ? check_tasks_known(*v, tasks) : expected<void>{}; !known) {
    return error{errc::unknown_task, path + ": " + known.error().message()};
  }
  return c;
}

/// Options shared by the commands that run an engine.
struct run_options {
  std::string db = "trellis.db";
  std::size_t concurrency = 0;
};

engine_config config_for(const run_options& opts) {
  engine_config cfg;
  cfg.store_path = opts.db;
  cfg.concurrency = opts.concurrency;
  return cfg;
}

int cmd_run(const std::string& file, const run_options& opts, task_registry tasks) {
  auto flow = load_workflow_file(file, tasks);
  if (!flow) {
    std::cerr << "error: " << flow.error().message() << '\n';
    return exit_bad_input;
  }
  engine eng{config_for(opts), std::move(tasks)};
  termination_watch watch{eng, opts.db};
  auto h = eng.submit(*flow);
  if (!h) {
    std::cerr << "error: " << to_string(h.error()) << '\n';
    return exit_code_for(h.error().code());
  }
  return report(*h);
}

int cmd_resume(const run_options& opts, task_registry tasks) {
  engine eng{config_for(opts), std::move(tasks)};
  termination_watch watch{eng, opts.db};
  int code = exit_success;
  for (const auto& h : eng.restored()) {
    if (report(h) != exit_success) {
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

int cmd_status(const std::string& id, const std::string& db) {
  auto store = open_read_only(db);
  auto wf = or_throw(store->find_workflow(id));
  if (!wf) {
    std::cerr << "error: no workflow with id " << id << " in " << db << '\n';
    return exit_bad_input;
  }
  value::array nodes;
  for (const auto& n : or_throw(store->nodes_of(id))) {
    nodes.push_back(value::map{{"node", n.node},
                               {"task", n.task},
                               {"state", std::string{to_string(n.state)}},
                               {"attempt", n.attempt},
                               {"error", n.error}});
  }
  value::array attempts;
  for (const auto& a : or_throw(store->attempts_of(id))) {
    attempts.push_back(value::map{{"node", a.node},
                                  {"attempt", a.attempt},
                                  {"type", a.error_type},
                                  {"message", a.error_message}});
  }
  std::string line = "{\"id\":" + json_string(wf->id) + ",\"state\":\"" + std::string{to_string(wf->state)} + "\"";
  line += ",\"result\":" + to_json(wf->result) + ",\"error\":" + to_json(wf->error);
  line += ",\"nodes\":" + to_json(value(std::move(nodes))) + ",\"failed_attempts\":" + to_json(value(std::move(attempts)));
  line += "}";
  std::cout << line << std::endl;
  return exit_success;
}

int cmd_dlq_list(const std::string& db) {
  auto store = open_read_only(db);
  for (const auto& d : or_throw(store->dead_letters(true))) {
    value::map row{{"id", d.id},
                   {"reason", d.reason},
                   {"error", d.error},
                   {"workflow_id", d.workflow_id},
                   {"node", d.node},
                   {"task", d.task},
                   {"attempts", d.attempts},
                   {"message_id", d.message_id},
                   {"bytes", static_cast<std::int64_t>(d.envelope.size())},
                   {"created_at", d.created_at},
                   {"replayed", d.replayed_at != 0}};
    std::cout << to_json(value(std::move(row))) << '\n';
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
  return report(*h);
}

/// Flags of the cluster commands, before the environment fills the gaps.
struct cluster_flags {
  std::string broker;
  std::string ns;
  std::vector<std::string> queues;
  std::int64_t ack_wait_ms = 30'000;
  std::size_t fetch_batch = 16;
  int replicas = 0;  // 0: not given
};

std::vector<std::string> split_urls(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in{text};
  for (std::string url; std::getline(in, url, ',');) {
    if (!url.empty()) {
      out.push_back(url);
    }
  }
  return out;
}

/// A flag wins over its environment variable, which wins over the default.
detail::cluster_options cluster_options_for(const cluster_flags& f, const run_options& opts) {
  detail::cluster_options out;
  std::string broker = f.broker;
  if (broker.empty()) {
    if (const char* env = std::getenv("TRELLIS_BROKER")) {
      broker = env;
    }
  }
  out.broker_urls = split_urls(broker);
  if (out.broker_urls.empty()) {
    throw usage_error("no broker: pass --broker URL or set TRELLIS_BROKER");
  }
  out.ns = f.ns;
  if (out.ns.empty()) {
    const char* env = std::getenv("TRELLIS_NAMESPACE");
    out.ns = env != nullptr && *env != '\0' ? env : "default";
  }
  out.queues = f.queues;
  out.concurrency = opts.concurrency;
  out.fetch_batch = f.fetch_batch;
  out.ack_wait = std::chrono::milliseconds{f.ack_wait_ms};
  out.replicas = f.replicas;
  if (out.replicas == 0) {
    const char* env = std::getenv("TRELLIS_REPLICAS");
    std::string text = env != nullptr ? env : "";
    out.replicas = 1;
    if (!text.empty()) {
      if (text.size() != 1 || text[0] < '1' || text[0] > '5') {
        throw usage_error("TRELLIS_REPLICAS is '" + text + "'; it must be a number from 1 to 5");
      }
      out.replicas = text[0] - '0';
    }
  }
  out.db = opts.db;
  return out;
}

/// Runs a started cluster process until SIGTERM or SIGINT (blocked by the
/// caller before any thread started), then drains it.
int serve(expected<std::unique_ptr<detail::cluster_node>> node, const std::string& what) {
  if (!node) {
    std::cerr << "error: " << to_string(node.error()) << '\n';
    return exit_code_for(node.error().code());
  }
  std::cerr << "trellis: " << what << " running" << std::endl;
  auto set = termination_watch::signals();
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  std::cerr << "trellis: signal " << sig << ": draining the " << what << std::endl;
  (*node)->shutdown();
  std::cout.flush();
  return exit_terminated;
}

std::string new_workflow_id() {
  std::random_device seed;
  std::mt19937_64 ids{(static_cast<std::uint64_t>(seed()) << 32) ^ seed()};
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(ids()),
                static_cast<unsigned long long>(ids()));
  return buf;
}

/// How long a submission waits for a dispatcher to commit it (and, while
/// none listens, for one to appear).
constexpr auto submit_timeout = std::chrono::seconds{30};

int cmd_submit(const std::string& file, const detail::cluster_options& opts, bool wait, const task_registry& tasks) {
  auto flow = load_workflow_file(file, tasks, !tasks.empty());
  if (!flow) {
    std::cerr << "error: " << flow.error().message() << '\n';
    return exit_bad_input;
  }
  detail::envelope e;
  e.type = detail::envelope_type::submit;
  e.workflow_id = new_workflow_id();
  e.id = e.workflow_id + ":submit";
  e.payload = to_value(*flow);
  e.sent_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();

  // Declared before the transport, whose destructor waits for the callback.
  std::mutex mutex;
  std::condition_variable done_cv;
  std::optional<std::string> note;

  detail::nats_config cfg;
  cfg.urls = opts.broker_urls;
  cfg.ns = opts.ns;
  cfg.client_name = "trellis-submit";
  cfg.declare_streams = false;  // it only sends a core NATS request; the streams are the cluster's business
  auto bus = detail::nats_transport::connect(std::move(cfg));
  if (!bus) {
    std::cerr << "error: " << to_string(bus.error()) << '\n';
    return exit_code_for(bus.error().code());
  }
  if (wait) {
    // Subscribed before the submission goes out, so the notice cannot be missed.
    auto watching = (*bus)->watch_done(e.workflow_id, [&](std::string bytes) {
      {
        std::lock_guard<std::mutex> guard{mutex};
        if (!note) {
          note = std::move(bytes);
        }
      }
      done_cv.notify_all();
    });
    if (!watching) {
      std::cerr << "error: " << to_string(watching.error()) << '\n';
      return exit_code_for(watching.error().code());
    }
  }
  auto reply = (*bus)->request_submission(detail::encode(e), submit_timeout);
  if (!reply) {
    std::cerr << "error: " << to_string(reply.error()) << '\n';
    return exit_code_for(reply.error().code());
  }
  auto answer = detail::unpack_from_string(*reply, reply->size(), 16);
  if (!answer || !answer->is_map()) {
    std::cerr << "error: unreadable answer from the dispatcher\n";
    return exit_broker;
  }
  const auto& m = answer->as_map();
  if (auto err = m.find("error"); err != m.end()) {
    std::cerr << "error: the dispatcher refused the workflow: " << to_json(err->second) << '\n';
    return exit_bad_input;
  }
  auto id = m.find("id");
  if (id == m.end() || !id->second.is_string()) {
    std::cerr << "error: the dispatcher's answer names no workflow\n";
    return exit_broker;
  }
  if (!wait) {
    std::cout << "{\"id\":" << json_string(id->second.as_string()) << "}" << std::endl;
    return exit_success;
  }
  std::unique_lock<std::mutex> lock{mutex};
  // No deadline, as `run`: the workflow may legitimately take long.
  done_cv.wait(lock, [&] { return note.has_value(); });
  auto outcome = detail::unpack_from_string(*note, note->size(), 1024);
  if (!outcome || !outcome->is_map()) {
    std::cerr << "error: unreadable completion notice for workflow " << e.workflow_id << '\n';
    return exit_broker;
  }
  const auto& o = outcome->as_map();
  auto field = [&](const char* k) { return o.count(k) != 0 ? o.at(k) : value{}; };
  auto state_name = field("state");
  auto state = state_name.is_string() ? node_state_from_string(state_name.as_string()) : std::nullopt;
  if (!state) {
    std::cerr << "error: completion notice without a state for workflow " << e.workflow_id << '\n';
    return exit_broker;
  }
  std::cout << outcome_line(id->second.as_string(), *state, field("result"), field("error")) << std::endl;
  return *state == node_state::success ? exit_success : exit_workflow_failed;
}

}  // namespace

int cli_main(int argc, char** argv, task_registry tasks) {
  CLI::App app{"Trellis: durable chain/group/chord workflows"};
  app.require_subcommand(1);
  run_options opts;
  std::string& db = opts.db;
  auto concurrency_flag = [&](CLI::App* cmd) {
    cmd->add_option("--concurrency", opts.concurrency, "Handler threads (default: one per hardware thread)")
        ->check(CLI::Range(1, 1024));
  };

  std::string file;
  auto* run = app.add_subcommand("run", "Run a workflow file embedded and print its outcome as JSON");
  run->add_option("FILE", file, "Workflow file (JSON)")->required();
  run->add_option("--db", db, "SQLite store")->capture_default_str();
  concurrency_flag(run);

  auto* resume = app.add_subcommand("resume", "Finish every unfinished workflow in the store");
  resume->add_option("--db", db, "SQLite store")->required();
  concurrency_flag(resume);

  std::string id;
  auto* status = app.add_subcommand("status", "Show a workflow's state, result, error and nodes");
  status->add_option("ID", id, "Workflow id")->required();
  status->add_option("--db", db, "SQLite store")->required();

  auto* dlq = app.add_subcommand("dlq", "List or replay dead letters");
  dlq->require_subcommand(1);
  auto* dlq_list = dlq->add_subcommand("list", "List dead letters, one JSON object per line");
  dlq_list->add_option("--db", db, "SQLite store")->required();
  std::int64_t dead_letter_id = 0;
  auto* dlq_replay = dlq->add_subcommand("replay", "Run a dead-lettered node again and print the outcome");
  dlq_replay->add_option("ID", dead_letter_id, "Dead letter id")->required();
  dlq_replay->add_option("--db", db, "SQLite store")->required();
  concurrency_flag(dlq_replay);

  cluster_flags cluster;
  auto broker_flags = [&](CLI::App* cmd) {
    cmd->add_option("--broker", cluster.broker,
                    "NATS server URL, or several comma-separated (default: $TRELLIS_BROKER)");
    cmd->add_option("--namespace", cluster.ns, "Trellis namespace (default: $TRELLIS_NAMESPACE, else default)");
  };
  auto replicas_flag = [&](CLI::App* cmd) {
    cmd->add_option("--replicas", cluster.replicas,
                    "JetStream replicas of the streams: 1, or 3 in a 3-node cluster (default: $TRELLIS_REPLICAS, "
                    "else 1)")
        ->check(CLI::Range(1, 5));
  };
  auto ack_wait_flag = [&](CLI::App* cmd) {
    cmd->add_option("--ack-wait-ms", cluster.ack_wait_ms,
                    "JetStream AckWait of this process's consumers: redelivery after this long unacked")
        ->check(CLI::Range(std::int64_t{100}, std::int64_t{3'600'000}))
        ->capture_default_str();
  };

  auto* worker = app.add_subcommand("worker", "Run task handlers for a cluster (NATS JetStream) until SIGTERM");
  broker_flags(worker);
  worker->add_option("--queues", cluster.queues, "Queues to serve, comma-separated (default: every queue)")
      ->delimiter(',');
  concurrency_flag(worker);
  worker->add_option("--fetch-batch", cluster.fetch_batch, "Task messages a handler thread takes per fetch")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  ack_wait_flag(worker);
  replicas_flag(worker);

  auto* dispatcher = app.add_subcommand("dispatcher", "Run the dispatcher of a cluster, owning the store");
  broker_flags(dispatcher);
  dispatcher->add_option("--db", db, "SQLite store")->required();
  ack_wait_flag(dispatcher);
  replicas_flag(dispatcher);

  bool wait = false;
  auto* submit = app.add_subcommand("submit", "Submit a workflow file to a cluster dispatcher over NATS");
  submit->add_option("FILE", file, "Workflow file (JSON)")->required();
  broker_flags(submit);
  submit->add_flag("--wait", wait, "Wait for the outcome and print it as `run` does");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto code = app.exit(e);
    return code == 0 ? exit_success : exit_bad_input;
  }

  bool runs_engine = *run || *resume || *dlq_replay;
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
    if (*worker) {
      termination_watch::block();  // before any thread exists, so that only serve() sees them
      return serve(detail::cluster_node::start_worker(cluster_options_for(cluster, opts), std::move(tasks)),
                   "worker");
    }
    if (*dispatcher) {
      termination_watch::block();
      return serve(detail::cluster_node::start_dispatcher(cluster_options_for(cluster, opts), tasks), "dispatcher");
    }
    if (*submit) {
      return cmd_submit(file, cluster_options_for(cluster, opts), wait, tasks);
    }
    if (*run) {
      return cmd_run(file, opts, std::move(tasks));
    }
    if (*resume) {
      return cmd_resume(opts, std::move(tasks));
    }
    if (*status) {
      return cmd_status(id, db);
    }
    if (*dlq_list) {
      return cmd_dlq_list(db);
    }
    if (*dlq_replay) {
      return cmd_dlq_replay(dead_letter_id, opts, std::move(tasks));
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
