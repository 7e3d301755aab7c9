#pragma once

/// @file
/// Internal to the NATS transport: rate limits held across every worker of
/// a namespace. The next free start slot of each rate-limited task name
/// (start_gate.hpp) is a key of the JetStream key-value bucket
/// `TRELLIS_<NS>_RATES`: the key is the task name in lowercase hex (any
/// name is a valid key that way), the value the slot in microseconds since
/// the Unix epoch, in decimal. A worker reserves a start by compare-and-set:
/// it reads the key and its revision, writes `max(now, next) + interval`
/// only if the revision is still the one it read (`kvStore_Update`; a key
/// not there yet with `kvStore_Create`), and reads again when another
/// worker wrote first. Every worker and every dispatcher partition of the
/// namespace meets at that key, so the limit holds for the namespace
/// whatever their number. The bucket keeps one value per key (history 1),
/// in the configured storage and replicas, and is made by the first worker
/// that reserves a slot.

#include "trellis/error.hpp"
#include "trellis/transport/nats_handles.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace trellis::detail {

class nats_connection;

/// The bucket and the reservations. Thread-safe: `mutex_` guards only the
/// bucket handle; reservations run in parallel, each holding the handle it
/// started with. After a failed reservation the handle is dropped and the
/// next one binds the bucket again, making it if it is gone (a server
/// restarted with memory storage, a bucket deleted by hand).
class rate_gate {
 public:
  explicit rate_gate(nats_connection& conn) : conn_(conn) {}
  rate_gate(const rate_gate&) = delete;
  rate_gate& operator=(const rate_gate&) = delete;
  ~rate_gate() { clear(); }

  /// As transport::reserve_start. Errors: `broker_unavailable` when the
  /// bucket cannot be read or written (the broker is away, no JetStream
  /// leader), or when other workers won the compare-and-set every time of a
  /// few dozen tries in a row.
  expected<std::int64_t> reserve(const std::string& task, std::int64_t interval_us);

  /// Teardown, before the connection's context goes: drops the bucket handle.
  void clear();

 private:
  using bucket_ptr = std::shared_ptr<kvStore>;

  /// The bucket, bound (or made) on first use.
  expected<bucket_ptr> bucket();

  nats_connection& conn_;
  std::mutex mutex_;
  bucket_ptr kv_;
};

/// The key of `task` in the bucket: its bytes in lowercase hex.
std::string rate_key(const std::string& task);

}  // namespace trellis::detail
