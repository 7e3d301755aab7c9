// 03: idempotency keys and crash recovery.
//
// A child process runs an engine on a store file and dies abruptly (`_exit`)
// inside the second step of an order workflow, just after that step's effect
// reached an external system. The parent then opens an engine on the same
// file: `restored()` hands back the unfinished workflow, which runs on and
// succeeds. The step that ran twice records its effect once, because every
// step passes `ctx.idempotency_key()` to the external system; and submitting
// the order again with its key (`engine::submit(flow, key)`) returns the first
// workflow instead of starting another.
//
// It exits non-zero if the workflow does not succeed or an effect is recorded
// other than once.

#include <trellis/trellis.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>

using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// The exit status of the child that died on purpose.
constexpr int crashed_on_purpose = 42;

/// The key this order is submitted with, however many times.
const std::string order_key = "order-A-17";

/// Stands in for an external system (a payment provider, a warehouse) that
/// deduplicates by idempotency key, as many real APIs do: a request whose key
/// it has seen has no second effect. Its records live in a file, so they
/// outlive the process that made them.
class ledger {
 public:
  explicit ledger(fs::path file) : file_(std::move(file)) {}

  /// Records `effect` under `key` unless the key is already there; returns
  /// whether it did.
  bool record(const std::string& key, const std::string& effect) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (entries().count(key) != 0) {
      return false;
    }
    std::ofstream{file_, std::ios::app} << key << ' ' << effect << '\n';
    return true;
  }

  /// Key -> effect; a key recorded twice would show in `lines()`.
  std::map<std::string, std::string> entries() const {
    std::map<std::string, std::string> out;
    std::ifstream in{file_};
    for (std::string key, effect; in >> key && std::getline(in >> std::ws, effect);) {
      out.emplace(key, effect);
    }
    return out;
  }

  /// Every record, repeated keys included.
  std::size_t lines() const {
    std::ifstream in{file_};
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
      ++n;
    }
    return n;
  }

 private:
  fs::path file_;
  mutable std::mutex mutex_;
};

/// The order workflow's tasks. `charge_card` kills the process once, right
/// after its effect is recorded, the first time any process runs it (the
/// marker file remembers).
trellis::task_registry order_tasks(ledger& external, const fs::path& crash_marker) {
  trellis::task_registry tasks;
  tasks.add("reserve_stock", [&external](trellis::task_context& ctx, std::string order) {
    external.record(ctx.idempotency_key(), "reserved " + order);
    return order;
  });
  tasks.add("charge_card", [&external, crash_marker](trellis::task_context& ctx, std::string order) {
    if (!external.record(ctx.idempotency_key(), "charged " + order)) {
      std::cout << "charge_card: " << ctx.idempotency_key() << " was charged before the crash; not again" << std::endl;
    }
    if (!fs::exists(crash_marker)) {
      std::ofstream{crash_marker} << "crashed\n";
      std::cout << "charge_card: charged " << order << ", now dying before the step is committed" << std::endl;
      _exit(crashed_on_purpose);
    }
    return order;
  });
  tasks.add("ship_order", [&external](trellis::task_context& ctx, std::string order) {
    external.record(ctx.idempotency_key(), "shipped " + order);
    return "shipped " + order;
  });
  return tasks;
}

trellis::canvas order_workflow() {
  return trellis::chain(trellis::signature("reserve_stock", {"A-17"}), trellis::signature("charge_card"),
                        trellis::signature("ship_order"));
}

trellis::engine_config store_at(const fs::path& dir) {
  trellis::engine_config cfg;
  cfg.store_path = (dir / "orders.db").string();
  return cfg;
}

/// The child: submits the order and dies inside its second step.
int run_until_crash(const fs::path& dir) {
  ledger external{dir / "ledger.txt"};
  trellis::engine engine{store_at(dir), order_tasks(external, dir / "crashed")};
  auto run = engine.submit(order_workflow(), order_key);
  if (!run) {
    std::cerr << "child: " << to_string(run.error()) << '\n';
    return 1;
  }
  std::cout << "child: submitted workflow " << run->id() << std::endl;
  run->wait_for(30s);
  std::cerr << "child: the workflow should not have finished here\n";
  return 1;
}

/// The parent, after the crash: finishes the order and checks every effect.
int recover(const fs::path& dir) {
  // [recover]
  ledger external{dir / "ledger.txt"};
  trellis::engine engine{store_at(dir), order_tasks(external, dir / "crashed")};

  // The workflows the crash left unfinished, running again.
  auto unfinished = engine.restored();
  if (unfinished.size() != 1) {
    std::cerr << "expected one unfinished workflow, got " << unfinished.size() << '\n';
    return 1;
  }
  // The same key gives the same workflow: nothing new is started.
  auto again = engine.submit(order_workflow(), order_key);
  if (!again || again->id() != unfinished.front().id()) {
    std::cerr << "submitting " << order_key << " again should return workflow " << unfinished.front().id() << '\n';
    return 1;
  }
  auto result = unfinished.front().wait_for(30s);
  if (!result) {
    std::cerr << to_string(result.error()) << '\n';
    return 1;
  }
  std::cout << "parent: workflow " << again->id() << " result " << to_json(*result) << '\n';
  // [recover]

  auto effects = external.entries();
  for (const auto& [key, effect] : effects) {
    std::cout << "ledger: " << key << ' ' << effect << '\n';
  }
  bool once_each = effects.size() == 3 && external.lines() == 3;
  return result->as<std::string>() == "shipped A-17" && once_each ? 0 : 1;
}

}  // namespace

int main() {
  auto pattern = (fs::temp_directory_path() / "trellis-example-03-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  fs::path dir = pattern;

  // Fork before this process starts an engine: a child of a process with
  // threads may only call async-signal-safe functions.
  std::cout.flush();
  pid_t child = fork();
  if (child < 0) {
    std::perror("fork");
    return 1;
  }
  if (child == 0) {
    _exit(run_until_crash(dir));
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != crashed_on_purpose) {
    std::cerr << "the child should have died inside charge_card (status " << status << ")\n";
    fs::remove_all(dir);
    return 1;
  }
  std::cout << "parent: the child died in the middle of the workflow; recovering from its store" << std::endl;

  int code = recover(dir);
  fs::remove_all(dir);
  return code;
}
