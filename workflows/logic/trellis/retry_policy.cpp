#include "trellis/retry_policy.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace trellis {

bool retry_policy::retries_type(std::string_view error_type) const noexcept {
  auto listed = [&](const std::vector<std::string>& types) {
    return std::find(types.begin(), types.end(), error_type) != types.end();
  };
  return (retry_on.empty() || listed(retry_on)) && !listed(dont_retry_on);
}

std::chrono::milliseconds retry_policy::delay_before(int retry_number, double unit) const noexcept {
  using std::chrono::milliseconds;
  auto base = static_cast<double>(std::max<std::int64_t>(countdown.count(), 0));
  double delay = base;
  if (backoff == backoff_kind::exponential) {
    // Clamp the exponent so 2^n cannot overflow a double for absurd retry counts.
    int exponent = std::clamp(retry_number - 1, 0, 62);
    delay = base * std::ldexp(1.0, exponent);
    delay = std::min(delay, static_cast<double>(std::max<std::int64_t>(backoff_max.count(), 0)));
  }
  if (jitter) {
    delay *= std::clamp(unit, 0.0, 1.0);
  }
  // Converting a double at or above 2^63 to int64 is undefined (on x86 it
  // yields a negative delay), so saturate: an uncapped policy or a huge
  // countdown waits "forever" instead of firing at once.
  constexpr auto largest = std::numeric_limits<std::int64_t>::max();
  if (delay >= static_cast<double>(largest)) {
    return milliseconds{largest};
  }
  return milliseconds{static_cast<std::int64_t>(delay)};
}

}  // namespace trellis
