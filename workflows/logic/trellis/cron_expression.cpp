#include "trellis/cron_expression.hpp"

#include <array>
#include <cctype>
#include <vector>

namespace trellis {

namespace {

constexpr std::array<const char*, 12> month_names = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr std::array<const char*, 7> weekday_names = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct field_spec {
  const char* name;
  int lo;
  int hi;
  const char* const* names;  // nullptr: numbers only
  std::size_t name_count;
  int name_base;  // the value of names[0]
};

error bad_field(const field_spec& f, std::string_view part, const std::string& why) {
  return error(errc::invalid_config,
               std::string("cron ") + f.name + " field '" + std::string(part) + "': " + why);
}

// A number or (for months and weekdays) a three-letter name.
bool parse_value(const field_spec& f, std::string_view s, int& out) {
  if (s.empty()) return false;
  if (std::isdigit(static_cast<unsigned char>(s[0]))) {
    if (s.size() > 2) return false;
    out = 0;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      out = out * 10 + (c - '0');
    }
    return out >= f.lo && out <= f.hi;
  }
  if (!f.names || s.size() != 3) return false;
  for (std::size_t i = 0; i < f.name_count; ++i) {
    const char* n = f.names[i];
    if (std::toupper(static_cast<unsigned char>(s[0])) == n[0] && std::toupper(static_cast<unsigned char>(s[1])) == n[1] &&
        std::toupper(static_cast<unsigned char>(s[2])) == n[2]) {
      out = f.name_base + static_cast<int>(i);
      return true;
    }
  }
  return false;
}

// One field into a bit per allowed value (index = value). Returns whether it is restricted.
expected<bool> parse_field(const field_spec& f, std::string_view text, std::vector<bool>& bits) {
  bits.assign(static_cast<std::size_t>(f.hi) + 1, false);
  if (text.empty()) return bad_field(f, text, "empty");
  bool restricted = text[0] != '*';
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    auto part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (part.empty()) return bad_field(f, text, "an empty list item");
    int step = 1;
    auto slash = part.find('/');
    auto range = part.substr(0, slash);
    if (slash != std::string_view::npos) {
      auto step_text = part.substr(slash + 1);
      if (step_text.empty() || step_text.size() > 2) return bad_field(f, part, "a step must be 1 to " + std::to_string(f.hi));
      step = 0;
      for (char c : step_text) {
        if (!std::isdigit(static_cast<unsigned char>(c))) return bad_field(f, part, "a step must be a number");
        step = step * 10 + (c - '0');
      }
      if (step < 1 || step > f.hi) return bad_field(f, part, "a step must be 1 to " + std::to_string(f.hi));
    }
    int lo = f.lo, hi = f.hi;
    if (range != "*") {
      auto dash = range.find('-');
      if (dash == std::string_view::npos) {
        if (!parse_value(f, range, lo)) return bad_field(f, part, "not a value in " + std::to_string(f.lo) + "-" + std::to_string(f.hi));
        // `5/10` runs from 5 to the end of the range, as cronie reads it.
        hi = slash == std::string_view::npos ? lo : f.hi;
      } else {
        if (!parse_value(f, range.substr(0, dash), lo) || !parse_value(f, range.substr(dash + 1), hi))
          return bad_field(f, part, "not a range in " + std::to_string(f.lo) + "-" + std::to_string(f.hi));
        if (hi < lo) return bad_field(f, part, "a range must not run backwards");
      }
    }
    for (int v = lo; v <= hi; v += step) bits[static_cast<std::size_t>(v)] = true;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return restricted;
}

}  // namespace

expected<cron_expression> cron_expression::parse(std::string_view text) {
  // Bounded before anything else: a flag or a stored row could hold anything.
  if (text.size() > 256) return error(errc::invalid_config, "cron expression longer than 256 characters");
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i == text.size()) break;
    std::size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != '\t') ++j;
    fields.push_back(text.substr(i, j - i));
    i = j;
  }
  if (fields.size() != 5)
    return error(errc::invalid_config, "a cron expression has 5 fields (minute hour day-of-month month day-of-week), got " +
                                           std::to_string(fields.size()));
  static const field_spec specs[5] = {
      {"minute", 0, 59, nullptr, 0, 0},
      {"hour", 0, 23, nullptr, 0, 0},
      {"day-of-month", 1, 31, nullptr, 0, 0},
      {"month", 1, 12, month_names.data(), month_names.size(), 1},
      {"day-of-week", 0, 7, weekday_names.data(), weekday_names.size(), 0},
  };
  cron_expression c;
  std::vector<bool> bits;
  for (std::size_t f = 0; f < 5; ++f) {
    auto restricted = parse_field(specs[f], fields[f], bits);
    if (!restricted) return restricted.error();
    for (std::size_t v = 0; v < bits.size(); ++v) {
      if (!bits[v]) continue;
      switch (f) {
        case 0: c.minutes_.set(v); break;
        case 1: c.hours_.set(v); break;
        case 2: c.days_.set(v); break;
        case 3: c.months_.set(v); break;
        default: c.weekdays_.set(v % 7); break;  // 7 is Sunday too
      }
    }
    if (f == 2) c.day_restricted_ = *restricted;
    if (f == 4) c.weekday_restricted_ = *restricted;
    if (!c.text_.empty()) c.text_ += ' ';
    c.text_ += std::string(fields[f]);
  }
  // Refuse a day-of-month that no chosen month has (`0 0 30 2 *`): it would
  // never fire. With the day of week restricted as well, the OR rule fires anyway.
  if (c.day_restricted_ && !c.weekday_restricted_) {
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; ++m) {
      if (!c.months_.test(static_cast<std::size_t>(m))) continue;
      for (int d = 1; d <= days_in_month(2000, m) && !possible; ++d) possible = c.days_.test(static_cast<std::size_t>(d));
    }
    if (!possible) return error(errc::invalid_config, "cron expression '" + c.text_ + "' matches no date");
  }
  return c;
}

bool cron_expression::day_matches(int year, int month, int day) const noexcept {
  if (!months_.test(static_cast<std::size_t>(month))) return false;
  bool dom = days_.test(static_cast<std::size_t>(day));
  bool dow = weekdays_.test(static_cast<std::size_t>(weekday(year, month, day)));
  if (day_restricted_ && weekday_restricted_) return dom || dow;
  return dom && dow;
}

bool cron_expression::matches(const local_time& t) const noexcept {
  return minutes_.test(static_cast<std::size_t>(t.minute)) && hours_.test(static_cast<std::size_t>(t.hour)) &&
         day_matches(t.year, t.month, t.day);
}

std::optional<epoch_seconds> cron_expression::next_after(epoch_seconds after, const time_zone& zone) const {
  // Walk the matching wall times in order from the local day of `after`
  // (less a day, for a zone whose clocks went back), mapping each to the
  // instant it names: its first occurrence, or the end of the gap it falls
  // in. That mapping never goes backwards, so the first instant past
  // `after` is the answer.
  local_time start = zone.to_local(after);
  std::int64_t day = days_from_civil(start.year, start.month, start.day) - 1;
  const std::int64_t last_day = day + 400 * 366;
  for (; day <= last_day; ++day) {
    local_time d = civil_from_seconds(day * 86'400);
    if (!day_matches(d.year, d.month, d.day)) continue;
    for (int h = 0; h < 24; ++h) {
      if (!hours_.test(static_cast<std::size_t>(h))) continue;
      for (int m = 0; m < 60; ++m) {
        if (!minutes_.test(static_cast<std::size_t>(m))) continue;
        local_time wall{d.year, d.month, d.day, h, m, 0};
        epoch_seconds at = zone.to_instants(wall).first;
        if (at > after) return at;
      }
    }
  }
  return std::nullopt;
}

std::optional<epoch_seconds> cron_expression::last_at_or_before(epoch_seconds at, const time_zone& zone) const {
  local_time start = zone.to_local(at);
  std::int64_t day = days_from_civil(start.year, start.month, start.day) + 1;
  const std::int64_t first_day = day - 400 * 366;
  for (; day >= first_day; --day) {
    local_time d = civil_from_seconds(day * 86'400);
    if (!day_matches(d.year, d.month, d.day)) continue;
    for (int h = 23; h >= 0; --h) {
      if (!hours_.test(static_cast<std::size_t>(h))) continue;
      for (int m = 59; m >= 0; --m) {
        if (!minutes_.test(static_cast<std::size_t>(m))) continue;
        local_time wall{d.year, d.month, d.day, h, m, 0};
        epoch_seconds t = zone.to_instants(wall).first;
        if (t <= at) return t;
      }
    }
  }
  return std::nullopt;
}

}  // namespace trellis
