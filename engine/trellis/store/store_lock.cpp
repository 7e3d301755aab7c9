#include "trellis/store/store_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace trellis::detail {

expected<store_lock> store_lock::try_acquire(const std::string& store_path) {
  auto path = store_path + ".lock";
  // Close-on-exec: a child process must not inherit (and so keep) the lock.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return error{errc::store_failed, "cannot open the lock file " + path + ": " + std::strerror(errno)};
  }
  int rc = 0;
  while ((rc = ::flock(fd, LOCK_EX | LOCK_NB)) != 0 && errno == EINTR) {
  }
  if (rc != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return error{errc::store_locked, "store " + store_path + " is in use by another dispatcher (it holds " + path +
                                           "); stop that one first, or start this one with --standby to take over "
                                           "when it stops"};
    }
    return error{errc::store_failed, "cannot lock " + path + ": " + std::strerror(err)};
  }
  return store_lock{fd, std::move(path)};
}

store_lock::store_lock(store_lock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

store_lock& store_lock::operator=(store_lock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

store_lock::~store_lock() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

}  // namespace trellis::detail
