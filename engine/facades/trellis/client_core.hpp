#pragma once

/// @file
/// Inside `trellis::client` (client.hpp): the connection shared by a client
/// and its handles, the per-workflow watches behind the handles, and the
/// way in for the command line, which has its settings as
/// `cluster_options` already (signing key read, secrets resolved).

#include "trellis/client.hpp"
#include "trellis/cluster_client.hpp"
#include "trellis/cluster_node.hpp"
#include "trellis/workflow_outcome.hpp"

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace trellis::detail {

/// Connects a `trellis::client` with settings the command line resolved:
/// the broker, namespace, partitions, limits and security of `opts`.
/// Errors as `client::connect`.
expected<std::unique_ptr<client>> connect_client(const cluster_options& opts, const std::string& client_name,
                                                 std::chrono::milliseconds submit_timeout,
                                                 std::chrono::milliseconds request_timeout);

class client_watch;

/// What the handles on one workflow learnt, and what the NATS threads tell
/// them: shared by the workflow's watch, its done-notice subscription and
/// the reconnect listener, none of which keeps the others alive.
struct watch_box {
  std::mutex mutex;
  std::condition_variable changed;
  /// The done notice, once it arrived and until it is read.
  std::optional<std::string> notice;
  /// The outcome, once known.
  std::optional<workflow_outcome> outcome;
  /// Ask the dispatcher now (at first, and after a reconnect).
  bool ask = true;

  /// From a NATS thread: the notice arrived / the connection came back.
  void take_notice(std::string bytes);
  void ask_again();
};

/// The live watches of a client, by workflow id.
struct watch_registry {
  struct entry {
    std::weak_ptr<client_watch> watch;
    std::shared_ptr<watch_box> box;
  };
  std::mutex mutex;
  std::map<std::string, entry> entries;

  /// Every live watch asks its dispatcher again (after a reconnect:
  /// notices published meanwhile are gone).
  void ask_all_again();
};

/// The connection of a client; shared by its handles, so it lives as long
/// as the last of them.
class client_core : public std::enable_shared_from_this<client_core> {
 public:
  client_core(std::unique_ptr<cluster_client> raw, std::string ns, std::chrono::milliseconds submit_timeout,
              std::chrono::milliseconds request_timeout);
  ~client_core();
  client_core(const client_core&) = delete;
  client_core& operator=(const client_core&) = delete;

  /// A client on `core`; what `client::connect` and `connect_client` return.
  static std::unique_ptr<client> make_client(std::shared_ptr<client_core> core);

  /// A handle on `id`. Every handle on one id shares one watch; a new
  /// watch subscribes to the workflow's done notice first. A final
  /// `known_status` (a status document) fills in the outcome at once;
  /// `reopened` (a replayed dead letter) forgets an outcome the watch knew,
  /// for every handle on the workflow.
  expected<client_handle> handle(const std::string& id, const value* known_status = nullptr, bool reopened = false);

  /// Asks the dispatcher of `partition` (`request_timeout`, unless `timeout`).
  expected<value> ask(const control_request& request, int partition,
                      std::optional<std::chrono::milliseconds> timeout = std::nullopt);
  /// The status document of `id`, from the dispatcher owning it.
  expected<value> status(const std::string& id, std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  cluster_client& raw() noexcept { return *raw_; }
  const std::string& ns() const noexcept { return ns_; }
  std::chrono::milliseconds submit_timeout() const noexcept { return submit_timeout_; }
  std::chrono::milliseconds request_timeout() const noexcept { return request_timeout_; }

  /// Called by a watch's destructor: ends the notice subscription of `id`
  /// unless another watch of it was made meanwhile.
  void release(const std::string& id);

 private:
  std::unique_ptr<cluster_client> raw_;
  std::string ns_;
  std::chrono::milliseconds submit_timeout_;
  std::chrono::milliseconds request_timeout_;
  /// Serialises subscribing and unsubscribing (`handle`, `release`).
  std::mutex subscribe_mutex_;
  std::shared_ptr<watch_registry> watches_ = std::make_shared<watch_registry>();
};

/// The state behind the handles on one workflow.
class client_watch {
 public:
  client_watch(std::shared_ptr<client_core> core, std::string id, std::shared_ptr<watch_box> box);
  ~client_watch();
  client_watch(const client_watch&) = delete;
  client_watch& operator=(const client_watch&) = delete;

  /// Takes a status document; true when it was final (the outcome is known).
  bool take_status(const value& doc);
  /// The workflow runs again (a replay): forget its outcome and notice.
  void reopen();

  /// Waits up to `timeout` for the outcome (client_handle::wait_for).
  expected<workflow_outcome> wait(std::chrono::milliseconds timeout);
  /// The outcome if known, else after one status request; nullopt while
  /// running or unanswered.
  std::optional<workflow_outcome> outcome_now();

  /// Period of the status requests while waiting.
  static constexpr std::chrono::seconds poll{3};

 private:
  std::shared_ptr<client_core> core_;
  std::string id_;
  std::shared_ptr<watch_box> box_;
};

/// The outcome a status document or done notice describes, if it is final.
std::optional<workflow_outcome> final_outcome(const std::string& id, const value& doc);

}  // namespace trellis::detail
