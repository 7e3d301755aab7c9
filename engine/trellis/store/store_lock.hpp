#pragma once

/// @file
/// The exclusive right to write one SQLite store: an advisory `flock` on
/// `<store>.lock`. A cluster dispatcher takes it before it opens its store, so
/// two dispatchers can never apply events to the same store. The kernel
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
  /// Takes the lock of `store_path` without waiting. Fails with
  /// `errc::store_locked` while another holder has it (another process, or
  /// another `store_lock` of this one), and with `errc::store_failed` when
  /// the lock file cannot be created or opened.
  static expected<store_lock> try_acquire(const std::string& store_path);

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
