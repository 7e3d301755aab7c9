#pragma once

/// @file
/// A small tmpfs of a test's own, for store faults: a disk that fills up
/// (a small `size`), a file system remounted read-only and back. Mounting
/// needs root, as the README's commands and CI run; `can_mount` says so
/// and lets a test pass without it elsewhere.

#include "support/child_process.hpp"
#include "support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace trellis::test {

/// A tmpfs of `size` mounted on a directory of its own, unmounted by the
/// destructor.
class small_disk {
 public:
  small_disk(const temp_dir& dir, const std::string& size) : path_(dir.file("disk")) {
    std::filesystem::create_directories(path_);
    mount({"-t", "tmpfs", "-o", "size=" + size, "tmpfs", path_});
  }
  ~small_disk() { ::system(("umount -l '" + path_ + "' 2>/dev/null").c_str()); }
  small_disk(const small_disk&) = delete;
  small_disk& operator=(const small_disk&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// Remounts with `options` ("size=64m", "ro").
  void remount(const std::string& options) { mount({"-o", "remount," + options, path_}); }

 private:
  void mount(std::vector<std::string> args) {
    args.insert(args.begin(), "/bin/mount");
    temp_dir capture;
    auto r = run_command(std::move(args), capture.file("mount"), std::chrono::seconds{20});
    INFO("mount: " << r.err);
    REQUIRE(r.status == 0);
  }
  std::string path_;
};

inline bool can_mount() {
  if (::geteuid() == 0) {
    return true;
  }
  WARN("not root: this test mounts a tmpfs of its own, so it runs only as root (CI runs as root)");
  return false;
}

}  // namespace trellis::test
