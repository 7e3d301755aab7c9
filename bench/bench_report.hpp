#pragma once

/// @file
/// What the benchmarks share to report their numbers: number formats, the
/// percentile of samples, and the Markdown table their results are printed
/// as (docs/performance.md quotes these tables).

#include <algorithm>
#include <cmath>
#include <cstddef>
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
