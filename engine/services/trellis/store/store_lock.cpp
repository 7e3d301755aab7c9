#include "trellis/store/store_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace trellis::detail {

namespace {

/// What the lock file says of its holder ("pid 1234, dispatcher"), or "" if
/// it says nothing readable. Read from a file another process writes, so it
/// is bounded and printable before it goes into a message.
std::string holder_of(int fd) {
  char buf[128];
  auto n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) {
    return "";
  }
  std::string text{buf, static_cast<std::size_t>(n)};
  auto end = text.find('\n');
  text = text.substr(0, end);
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) {
      return "";
    }
  }
  return text;
}

}  // namespace

expected<store_lock> store_lock::try_acquire(const std::string& store_path, const std::string& role) {
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
    auto holder = err == EWOULDBLOCK ? holder_of(fd) : std::string{};
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return error{errc::store_locked, "store " + store_path + " is in use by another process (" +
                                           (holder.empty() ? std::string{"it"} : holder + ";") + " holds " + path +
                                           ")"};
    }
    return error{errc::store_failed, "cannot lock " + path + ": " + std::strerror(err)};
  }
  // Best effort: the lock holds whether or not its holder could be written.
  auto line = "pid " + std::to_string(::getpid()) + ", " + role + "\n";
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] auto written = ::pwrite(fd, line.data(), line.size(), 0);
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
