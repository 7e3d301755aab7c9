#pragma once

/// @file
/// Trellis' one error convention: an `errc` code list whose every entry names
/// its outcome, an `error` value, `expected<T>` for results at message
/// boundaries and hot paths, and two exceptions for failures that happen
/// before anything flows (programmer errors and setup).

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace trellis {

/// Every runtime failure Trellis reports. Each entry names what happens next.
enum class errc : std::uint8_t {
  /// Bytes that are not a msgpack envelope, or an envelope missing a field or
  /// carrying a field of the wrong type. Outcome: dead-letter store.
  malformed_envelope = 1,
  /// An envelope whose contract version this build does not know.
  /// Outcome: dead-letter store (never misread as the current version).
  unsupported_version,
  /// A task name no registry in this process knows. Outcome: dead-letter store.
  unknown_task,
  /// Arguments a typed handler cannot bind or convert (a wrong count, an
  /// unknown keyword, a parameter given twice or missing, a value of the
  /// wrong type). Outcome: node fails without retry, dead-letter store.
  bad_arguments,
  /// A message or value beyond the configured size, depth or width limits.
  /// Outcome: dead-letter store.
  payload_too_large,
  /// The handler raised or returned an error. Outcome: the retry policy runs;
  /// when it is exhausted, the node fails and its message is dead-lettered.
  task_failed,
  /// The handler ran past its time limit. Outcome: as `task_failed`.
  time_limit_exceeded,
  /// A workflow failed; the error names the failed task. Outcome: final.
  workflow_failed,
  /// A workflow, node or dead letter id that the store does not hold.
  not_found,
  /// `wait_for` gave up before the workflow finished. The workflow continues.
  timeout,
  /// The broker cannot be reached. Outcome: retry with backoff; nothing lost.
  broker_unavailable,
  /// The database is locked by another writer. Outcome: retry with backoff.
  store_locked,
  /// The database is not a Trellis store or is damaged. Outcome: exit code 3.
  store_corrupt,
  /// Any other I/O failure of the store. Outcome: exit code 3.
  store_failed,
  /// Input that does not describe a valid workflow (CLI file, canvas limits).
  /// Outcome: rejected before anything runs (CLI exit code 2).
  invalid_workflow,
  /// A configuration value is out of range; the message names the field.
  /// Outcome: `setup_error` before anything starts (CLI exit code 2).
  invalid_config,
  /// The engine is shutting down and takes no new work.
  shutting_down,
  /// The workflow or task was revoked. Outcome: final, not retried.
  revoked,
  /// A message without a signature reached a process that has a signing key.
  /// Outcome: dead-letter store (task messages, events); an error reply
  /// (submissions).
  unsigned_message,
  /// A message whose signature does not match its body under the cluster's
  /// key. Outcome: as `unsigned_message`.
  bad_signature,
  /// A worker's process pool can no longer run handlers (its zygote died,
  /// so no handler child can be replaced). Outcome: the worker takes no more
  /// tasks and exits with code 5; tasks it held unacked are delivered again.
  process_pool_failed,
};

/// The stable snake_case name of a code, as it appears in JSON output and logs.
const char* to_string(errc code) noexcept;

/// A code plus a human message that names its subject (message id, task,
/// field, file) and what happens next.
class error {
 public:
  error() = default;
  error(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

 private:
  errc code_ = errc::task_failed;
  std::string message_;
};

/// "code: message", for logs and CLI output.
std::string to_string(const error& err);

/// A value of type `T` or an `error`. Used at message boundaries and on hot
/// paths, where a failure is an expected outcome rather than a bug.
template <class T>
class expected {
 public:
  expected(T value) : data_(std::in_place_index<0>, std::move(value)) {}           // NOLINT
  expected(trellis::error err) : data_(std::in_place_index<1>, std::move(err)) {}  // NOLINT

  bool has_value() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & { return check(), std::get<0>(data_); }
  const T& value() const& { return check(), std::get<0>(data_); }
  T&& value() && { return check(), std::get<0>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  /// The error; calling it on a value is a programmer error.
  const trellis::error& error() const {
    if (has_value()) {
      throw std::logic_error("trellis::expected::error() called on a value");
    }
    return std::get<1>(data_);
  }

 private:
  void check() const {
    if (!has_value()) {
      throw std::logic_error("trellis::expected holds an error: " + to_string(std::get<1>(data_)));
    }
  }
  std::variant<T, trellis::error> data_;
};

/// `expected<void>`: success or an error.
template <>
class expected<void> {
 public:
  expected() = default;
  expected(trellis::error err) : err_(std::move(err)), ok_(false) {}  // NOLINT
  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const trellis::error& error() const {
    if (ok_) {
      throw std::logic_error("trellis::expected<void>::error() called on success");
    }
    return err_;
  }

 private:
  trellis::error err_;
  bool ok_ = true;
};

/// Misuse of the API, detected before anything runs: a duplicate task name,
/// an empty chain, registering after start.
class usage_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// A setup failure: a database that does not open or migrate, a bad config.
class setup_error : public std::runtime_error {
 public:
  setup_error(errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  errc code() const noexcept { return code_; }

 private:
  errc code_;
};

}  // namespace trellis
