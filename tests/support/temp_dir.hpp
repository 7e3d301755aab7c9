#pragma once

/// @file
/// A private temporary directory per test, removed with everything in it when
/// the test ends.

#include <stdlib.h>  // mkdtemp (POSIX)

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace trellis::test {

/// An RAII temporary directory, created with `mkdtemp` under the system's
/// temporary directory (so parallel tests never share one) and removed
/// recursively by the destructor. Not copyable.
class temp_dir {
 public:
  /// Creates the directory; throws `std::runtime_error` when that fails.
  temp_dir() {
    auto pattern = (std::filesystem::temp_directory_path() / "trellis-test-XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) {
      throw std::runtime_error("cannot create a temporary directory from '" + pattern + "': " + std::strerror(errno));
    }
    path_ = buffer.data();
  }

  ~temp_dir() {
    // Cleanup is best effort: a leftover directory must not fail the test.
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  /// The directory.
  const std::filesystem::path& path() const noexcept { return path_; }

  /// The path of `name` inside the directory (the file is not created).
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace trellis::test
