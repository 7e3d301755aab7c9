#pragma once

/// @file
/// Internal to the NATS transport: how many messages the task stream holds
/// on each task subject (`trellis.<ns>.task.<queue>.<task>`), read in one
/// JetStream request (stream info with a subjects filter). A worker with
/// one consumer per task asks it to know which of them to pull from
/// (nats_consumers.hpp); `inspect` and the queue-depth metric read it too.

#include "trellis/error.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace trellis::detail {

class nats_connection;

/// How old a worker's census may be before a fetch that found nothing
/// reads it again: the longest a task of a consumer not busy lately waits
/// before a worker pulls it, and one stream-info request per interval per
/// idle worker process.
constexpr std::chrono::milliseconds task_census_interval{25};

/// The messages of one task subject: queued, or delivered and not acked
/// (a work-queue stream keeps a message until its ack). A pack counts once.
struct queued_subject {
  std::string queue;
  /// The task as it stands in the subject (subject_space::task_token).
  std::string task_token;
  std::uint64_t messages = 0;
};

/// The task subjects matching `filter` (a subject of the task stream, with
/// wildcards) that hold messages. Errors: broker_unavailable, and what
/// JetStream answers (nats_connection::api_error).
expected<std::vector<queued_subject>> read_task_census(nats_connection& conn, const std::string& filter);

/// The census of every task subject of a namespace, read again when the
/// last one is older than `max_age`. Thread-safe: one caller reads while
/// the others go on with the census before; a failed read keeps the last
/// census and is remembered on the connection.
class task_census {
 public:
  task_census(nats_connection& conn, std::chrono::milliseconds max_age) : conn_(conn), max_age_(max_age) {}

  /// The latest census, read first when due and no other caller is reading.
  std::shared_ptr<const std::vector<queued_subject>> current();
  /// When the next read is due.
  std::chrono::steady_clock::time_point next_due() const;

 private:
  nats_connection& conn_;
  const std::chrono::milliseconds max_age_;
  mutable std::mutex mutex_;  // guards the fields below
  std::mutex reading_;        // held by the one caller reading
  std::shared_ptr<const std::vector<queued_subject>> last_ = std::make_shared<std::vector<queued_subject>>();
  std::chrono::steady_clock::time_point read_at_{};
};

}  // namespace trellis::detail
