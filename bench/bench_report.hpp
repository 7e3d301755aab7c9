#pragma once

/// @file
/// What the benchmarks share to report their numbers: the machine they ran
/// on, number formats, the percentile of samples, and the Markdown table
/// their results are printed as (docs/performance.md quotes these tables).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

namespace trellis::bench {

/// `x` with `digits` digits after the point.
inline std::string fixed(double x, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << x;
  return out.str();
}

/// `x` rounded to a whole number, with commas between thousands: 1,234,567.
inline std::string thousands(double x) {
  auto s = std::to_string(static_cast<long long>(std::llround(x)));
  for (auto i = static_cast<long>(s.size()) - 3; i > 0; i -= 3) {
    s.insert(static_cast<std::size_t>(i), ",");
  }
  return s;
}

/// The CPU's model name from /proc/cpuinfo, or "unknown".
inline std::string cpu_model() {
  std::ifstream in{"/proc/cpuinfo"};
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  }
  return "unknown";
}

/// The 1, 5 and 15-minute load averages: the benchmark wants the machine to
/// itself, and a busy machine explains a slow number.
inline std::string load_average() {
  double load[3] = {0.0, 0.0, 0.0};
  if (::getloadavg(load, 3) != 3) {
    return "unknown";
  }
  return fixed(load[0], 2) + " " + fixed(load[1], 2) + " " + fixed(load[2], 2);
}

/// The date and time now, in UTC: "2026-01-31 12:00 UTC".
inline std::string today() {
  auto t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

/// Nearest-rank percentile of sorted samples.
inline double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) {
    return 0.0;
  }
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

/// Prints `cells` as a Markdown table with padded columns: the first line is
/// the header, every line has as many cells as it.
inline void print_markdown_table(std::ostream& out, const std::vector<std::vector<std::string>>& cells) {
  if (cells.empty()) {
    return;
  }
  std::vector<std::size_t> width(cells.front().size(), 0);
  for (const auto& line : cells) {
    for (std::size_t i = 0; i < line.size(); ++i) {
      width[i] = std::max(width[i], line[i].size());
    }
  }
  auto print_line = [&](const std::vector<std::string>& line) {
    out << '|';
    for (std::size_t i = 0; i < line.size(); ++i) {
      out << ' ' << line[i] << std::string(width[i] - line[i].size(), ' ') << " |";
    }
    out << '\n';
  };
  print_line(cells.front());
  out << '|';
  for (auto w : width) {
    out << std::string(w + 2, '-') << '|';
  }
  out << '\n';
  for (std::size_t i = 1; i < cells.size(); ++i) {
    print_line(cells[i]);
  }
}

}  // namespace trellis::bench
