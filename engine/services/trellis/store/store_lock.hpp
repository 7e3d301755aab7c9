#pragma once

/// @file
/// The exclusive right to write one SQLite store: an advisory `flock` on
/// `<store>.lock`. Every process that writes a store takes it before it
/// opens the store: a cluster dispatcher, and every embedded engine (`run`,
/// `resume`, `dlq replay`), so two processes can never run the same
/// workflows or apply events to the same store. The holder writes its PID
/// and role into the file, so a refused process can name it. The kernel
/// releases the lock when the holder's process ends in any way (SIGKILL
/// included), which is what lets a standby take over at once.
///
/// `flock` works between processes of one machine on a local file system,
/// which is where a SQLite store must live anyway.

#include "trellis/error.hpp"

#include <string>
#include <utility>

namespace trellis::detail {

class store_lock {
 public:
  /// Takes the lock of `store_path` without waiting, as `role` (written
  /// into the lock file beside this process's PID, e.g. "dispatcher").
  /// Fails with `errc::store_locked` while another holder has it (another
  /// process, or another `store_lock` of this one), naming the holder's PID
  /// and role, and with `errc::store_failed` when the lock file cannot be
  /// created or opened (a read-only directory).
  static expected<store_lock> try_acquire(const std::string& store_path, const std::string& role);

  store_lock(store_lock&& other) noexcept;
  store_lock& operator=(store_lock&& other) noexcept;
  store_lock(const store_lock&) = delete;
  store_lock& operator=(const store_lock&) = delete;
  /// Releases the lock (closing the file releases it).
  ~store_lock();

  /// `<store>.lock`.
  const std::string& path() const noexcept { return path_; }

 private:
  store_lock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace trellis::detail
