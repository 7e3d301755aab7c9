#include "trellis/rate_limit.hpp"

#include <charconv>

namespace trellis {

std::int64_t rate_limit_spec::interval_us() const noexcept {
  std::int64_t per_unit = unit == 'h' ? 3'600'000'000LL : unit == 'm' ? 60'000'000LL : 1'000'000LL;
  auto n = count < 1 ? 1 : count;
  return (per_unit + n - 1) / n;
}

std::string rate_limit_spec::to_string() const { return std::to_string(count) + "/" + unit; }

std::optional<rate_limit_spec> parse_rate_limit(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 2 != text.size()) {
    return std::nullopt;
  }
  auto digits = text.substr(0, slash);
  if (digits.size() > 7 || digits[0] == '0' || digits.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc{} || end != digits.data() + digits.size() || n < 1 || n > rate_limit_spec::max_count) {
    return std::nullopt;
  }
  char unit = text[slash + 1];
  if (unit != 's' && unit != 'm' && unit != 'h') {
    return std::nullopt;
  }
  rate_limit_spec r;
  r.count = n;
  r.unit = unit;
  return r;
}

}  // namespace trellis
