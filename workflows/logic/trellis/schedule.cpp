#include "trellis/schedule.hpp"

#include <algorithm>
#include <limits>

#include "trellis/defaults.hpp"

namespace trellis {

namespace {

error bad(std::string message) { return error(errc::invalid_config, std::move(message)); }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace

expected<schedule_clock> schedule_clock::make(const schedule_spec& spec, time_zone zone) {
  if (auto ok = check_schedule_name(spec.name); !ok) return ok.error();
  schedule_clock c;
  c.spec_ = spec;
  if (spec.every) {
    if (!spec.cron.empty()) return bad("schedule " + spec.name + ": an interval and a cron expression at once");
    if (*spec.every < defaults::min_schedule_interval || *spec.every > defaults::max_schedule_interval)
      return bad("schedule " + spec.name + ": an interval must be 1s to 366d");
    if (spec.every->count() % 1000 != 0) return bad("schedule " + spec.name + ": an interval is whole seconds");
  } else {
    auto cron = cron_expression::parse(spec.cron);
    if (!cron) return bad("schedule " + spec.name + ": " + cron.error().message());
    c.cron_ = std::move(*cron);
    c.zone_ = std::move(zone);
  }
  if (spec.catchup.kind == catchup_kind::all &&
      (spec.catchup.bound < 1 || spec.catchup.bound > defaults::max_schedule_catchup_bound))
    return bad("schedule " + spec.name + ": the catch-up bound must be 1 to " +
               std::to_string(defaults::max_schedule_catchup_bound));
  return c;
}

std::optional<std::int64_t> schedule_clock::next_after(std::int64_t after_ms) const {
  if (spec_.every) {
    const std::int64_t every = spec_.every->count();
    std::int64_t k = after_ms < spec_.anchor_ms ? 1 : floor_div(after_ms - spec_.anchor_ms, every) + 1;
    return spec_.anchor_ms + k * every;
  }
  std::int64_t after = std::max(after_ms, spec_.anchor_ms);
  auto s = cron_->next_after(floor_div(after, 1000), zone_);
  if (!s) return std::nullopt;
  return *s * 1000;
}

std::optional<std::int64_t> schedule_clock::last_at_or_before(std::int64_t at_ms) const {
  if (at_ms <= spec_.anchor_ms) return std::nullopt;
  if (spec_.every) {
    const std::int64_t every = spec_.every->count();
    std::int64_t k = floor_div(at_ms - spec_.anchor_ms, every);
    if (k < 1) return std::nullopt;
    return spec_.anchor_ms + k * every;
  }
  auto s = cron_->last_at_or_before(floor_div(at_ms, 1000), zone_);
  if (!s || *s * 1000 <= spec_.anchor_ms) return std::nullopt;
  return *s * 1000;
}

tick_plan plan_ticks(const schedule_clock& schedule, const schedule_state& state, std::int64_t now_ms,
                     bool previous_running, std::chrono::milliseconds late_grace) {
  const auto& spec = schedule.spec();
  tick_plan plan;
  plan.next = state;
  const std::int64_t from = state.last_tick.value_or(spec.anchor_ms);

  // The due ticks, (from, now]: only as many of the latest as the catch-up
  // policy could submit, counted back from now, so a year of downtime of a
  // one-second schedule costs no more than a minute of it.
  std::size_t wanted = spec.catchup.kind == catchup_kind::all ? spec.catchup.bound : 1;
  std::vector<std::int64_t> due;
  std::optional<std::int64_t> latest = schedule.last_at_or_before(now_ms);
  bool more_due = false;
  for (auto t = latest; t && *t > from;) {
    if (due.size() == wanted) {
      more_due = true;
      break;
    }
    due.push_back(*t);
    t = schedule.last_at_or_before(*t - 1);
  }
  std::reverse(due.begin(), due.end());
  if (more_due) ++plan.passed_over;  // at least one; the exact count is not worth a walk

  // Catch-up: which due ticks are kept.
  std::vector<std::int64_t> kept;
  if (!due.empty()) {
    plan.next.last_tick = due.back();
    if (spec.catchup.kind == catchup_kind::skip) {
      if (now_ms - due.back() <= late_grace.count()) kept.push_back(due.back());
      plan.passed_over += due.size() - kept.size();
    } else {
      kept = due;
    }
  }

  // Overlap: the buffered tick first, then the kept ones in order.
  std::vector<std::int64_t> candidates;
  if (state.buffered) candidates.push_back(*state.buffered);
  candidates.insert(candidates.end(), kept.begin(), kept.end());
  plan.next.buffered.reset();
  bool running = previous_running;
  for (std::int64_t t : candidates) {
    if (spec.overlap == overlap_policy::allow || !running) {
      plan.submit.push_back(t);
      plan.next.last_submitted = t;
      running = true;
    } else if (spec.overlap == overlap_policy::buffer_one && !plan.next.buffered) {
      plan.next.buffered = t;
    } else {
      ++plan.passed_over;
    }
  }
  // Every tick up to now was decided (counted back from now): the next is after now.
  plan.next_due = schedule.next_after(std::max(from, now_ms));
  return plan;
}

schedule_state resume_state(const schedule_clock& schedule, schedule_state state, std::int64_t now_ms) {
  if (auto last = schedule.last_at_or_before(now_ms); last && (!state.last_tick || *last > *state.last_tick))
    state.last_tick = *last;
  return state;
}

std::string tick_key(std::string_view schedule_name, std::int64_t tick_ms) {
  return "schedule:" + std::string(schedule_name) + ":" + std::to_string(tick_ms);
}

std::string trigger_key(std::string_view schedule_name, std::int64_t now_ms) {
  return "schedule:" + std::string(schedule_name) + ":trigger:" + std::to_string(now_ms);
}

expected<void> check_schedule_name(std::string_view name) {
  if (name.empty() || name.size() > defaults::max_schedule_name_chars)
    return bad("a schedule name is 1 to " + std::to_string(defaults::max_schedule_name_chars) + " characters");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return bad("schedule name '" + std::string(name) + "': only letters, digits, '_' and '-'");
  }
  return {};
}

expected<std::chrono::milliseconds> parse_interval(std::string_view text) {
  const std::string shown(text);
  if (text.size() < 2 || text.size() > 12) return bad("interval '" + shown + "': a number and a unit (30s, 5m, 2h, 1d)");
  std::int64_t unit = 0;
  switch (text.back()) {
    case 's': unit = 1'000; break;
    case 'm': unit = 60'000; break;
    case 'h': unit = 3'600'000; break;
    case 'd': unit = 86'400'000; break;
    default: return bad("interval '" + shown + "': the unit is s, m, h or d");
  }
  std::int64_t n = 0;
  for (char c : text.substr(0, text.size() - 1)) {
    if (c < '0' || c > '9') return bad("interval '" + shown + "': a whole number and a unit (30s, 5m, 2h, 1d)");
    n = n * 10 + (c - '0');  // at most 11 digits: no overflow
  }
  std::chrono::milliseconds every{n * unit};
  if (n > std::numeric_limits<std::int64_t>::max() / unit || every < defaults::min_schedule_interval ||
      every > defaults::max_schedule_interval)
    return bad("interval '" + shown + "': must be 1s to 366d");
  return every;
}

std::string interval_text(std::chrono::milliseconds every) {
  const std::int64_t ms = every.count();
  if (ms % 86'400'000 == 0) return std::to_string(ms / 86'400'000) + "d";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  return std::to_string(ms / 1'000) + "s";
}

expected<overlap_policy> parse_overlap(std::string_view text) {
  if (text == "skip") return overlap_policy::skip;
  if (text == "buffer_one") return overlap_policy::buffer_one;
  if (text == "allow") return overlap_policy::allow;
  return bad("overlap policy '" + std::string(text.substr(0, 64)) + "': skip, buffer_one or allow");
}

std::string_view to_string(overlap_policy p) noexcept {
  switch (p) {
    case overlap_policy::buffer_one: return "buffer_one";
    case overlap_policy::allow: return "allow";
    default: return "skip";
  }
}

expected<catchup_policy> parse_catchup(std::string_view text) {
  if (text == "skip") return catchup_policy{catchup_kind::skip, 0};
  if (text == "one") return catchup_policy{catchup_kind::one, 0};
  if (text == "all") return catchup_policy{catchup_kind::all, defaults::schedule_catchup_bound};
  if (text.size() > 4 && text.size() <= 9 && text.substr(0, 4) == "all:") {
    std::uint32_t n = 0;
    bool digits = true;
    for (char c : text.substr(4)) {
      if (c < '0' || c > '9') digits = false;
      else n = n * 10 + static_cast<std::uint32_t>(c - '0');
    }
    if (digits && n >= 1 && n <= defaults::max_schedule_catchup_bound) return catchup_policy{catchup_kind::all, n};
  }
  return bad("catch-up policy '" + std::string(text.substr(0, 64)) + "': skip, one, all or all:N (N 1 to " +
             std::to_string(defaults::max_schedule_catchup_bound) + ")");
}

std::string to_string(const catchup_policy& p) {
  switch (p.kind) {
    case catchup_kind::one: return "one";
    case catchup_kind::all: return "all:" + std::to_string(p.bound);
    default: return "skip";
  }
}

}  // namespace trellis
