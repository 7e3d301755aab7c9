#pragma once

/// @file
/// Small file helpers for tests: write a file, read one back, count its lines.

#include "support/temp_dir.hpp"

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

namespace trellis::test {

/// Writes `bytes` to `path` (created or truncated) in binary mode; returns
/// whether all of them were written.
inline bool write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

/// Writes `text` to the file `name` inside `dir` and returns its path. Throws
/// `std::runtime_error` when the file cannot be written, which fails the test.
inline std::string write_file(const temp_dir& dir, const std::string& name, const std::string& text) {
  auto path = dir.file(name);
  if (!write_file(path, text)) {
    throw std::runtime_error("cannot write test file '" + path + "'");
  }
  return path;
}

/// Writes `size` pseudo-random bytes drawn from `seed` to `path`: the same
/// garbage on every run, for files that are not what their name claims.
inline bool write_random_bytes(const std::string& path, std::uint32_t seed, std::size_t size) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  std::mt19937 bytes{seed};
  for (std::size_t i = 0; i < size; ++i) {
    out.put(static_cast<char>(bytes() & 0xff));
  }
  return static_cast<bool>(out);
}

/// Everything in the file at `path`, byte for byte; nothing when it cannot be
/// opened.
inline std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The number of lines in the file at `path`, 0 when there is no such file.
/// The demo tasks that leave a mark append one line per run, so this counts runs.
inline std::size_t line_count(const std::string& path) {
  std::ifstream in{path};
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
  }
  return n;
}

}  // namespace trellis::test
