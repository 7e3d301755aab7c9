#include "trellis/time_zone.hpp"

#include <algorithm>
#include <cstddef>

namespace trellis {

namespace {

constexpr std::int64_t seconds_per_day = 86'400;
// The largest UTC offset accepted from a file or a rule: real zones stay
// within -12 h .. +14 h; 25 h leaves room and keeps arithmetic far from overflow.
constexpr std::int32_t max_offset = 25 * 3600;

error bad_zone(const std::string& name, const std::string& why) {
  return error(errc::invalid_config, "time zone " + name + ": " + why);
}

// A big-endian reader over bytes that never reads past the end.
class reader {
 public:
  explicit reader(std::string_view bytes) : bytes_(bytes) {}
  bool has(std::size_t n) const { return pos_ <= bytes_.size() && bytes_.size() - pos_ >= n; }
  std::uint32_t u32() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes_[pos_++]);
    return v;
  }
  std::int64_t i64() {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(bytes_[pos_++]);
    return static_cast<std::int64_t>(v);
  }
  unsigned char u8() { return static_cast<unsigned char>(bytes_[pos_++]); }
  void skip(std::size_t n) { pos_ += n; }
  std::size_t pos() const { return pos_; }
  std::string_view rest() const { return bytes_.substr(pos_); }

 private:
  std::string_view bytes_;
  std::size_t pos_ = 0;
};

struct tzif_header {
  char version = 0;
  std::uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;
};

bool read_header(reader& in, tzif_header& h) {
  if (!in.has(44)) return false;
  if (in.u8() != 'T' || in.u8() != 'Z' || in.u8() != 'i' || in.u8() != 'f') return false;
  h.version = static_cast<char>(in.u8());
  in.skip(15);
  h.isutcnt = in.u32();
  h.isstdcnt = in.u32();
  h.leapcnt = in.u32();
  h.timecnt = in.u32();
  h.typecnt = in.u32();
  h.charcnt = in.u32();
  return true;
}

// The bytes of a data block with `time_size`-byte times, or 0 if the counts are absurd.
std::size_t block_size(const tzif_header& h, std::size_t time_size) {
  // Every count is bounded by what a file can hold; these bounds keep the
  // sum far from overflow and refuse a header that claims more.
  constexpr std::uint32_t max_count = 1u << 20;
  if (h.timecnt > max_count || h.typecnt > 256 || h.charcnt > max_count || h.leapcnt > max_count ||
      h.isutcnt > 256 || h.isstdcnt > 256)
    return 0;
  return std::size_t{h.timecnt} * time_size + h.timecnt + std::size_t{h.typecnt} * 6 + h.charcnt +
         std::size_t{h.leapcnt} * (time_size + 4) + h.isstdcnt + h.isutcnt;
}

// Parses `[+-]hh[:mm[:ss]]` at `s`, advancing it; seconds, unsigned as written.
bool parse_hms(std::string_view& s, std::int32_t& out, int max_hours) {
  int sign = 1;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    sign = s[0] == '-' ? -1 : 1;
    s.remove_prefix(1);
  }
  auto number = [&s](int& v) {
    if (s.empty() || s[0] < '0' || s[0] > '9') return false;
    v = 0;
    int digits = 0;
    while (!s.empty() && s[0] >= '0' && s[0] <= '9' && digits < 3) {
      v = v * 10 + (s[0] - '0');
      s.remove_prefix(1);
      ++digits;
    }
    return true;
  };
  int h = 0, m = 0, sec = 0;
  if (!number(h) || h > max_hours) return false;
  if (!s.empty() && s[0] == ':') {
    s.remove_prefix(1);
    if (!number(m) || m > 59) return false;
    if (!s.empty() && s[0] == ':') {
      s.remove_prefix(1);
      if (!number(sec) || sec > 59) return false;
    }
  }
  out = sign * (h * 3600 + m * 60 + sec);
  return true;
}

bool parse_zone_abbrev(std::string_view& s) {
  if (!s.empty() && s[0] == '<') {
    auto close = s.find('>');
    if (close == std::string_view::npos || close < 4) return false;
    s.remove_prefix(close + 1);
    return true;
  }
  std::size_t n = 0;
  while (n < s.size() && ((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z'))) ++n;
  if (n < 3) return false;
  s.remove_prefix(n);
  return true;
}

// `Mm.w.d[/time]`.
bool parse_rule_date(std::string_view& s, int& month, int& week, int& day, std::int32_t& time) {
  if (s.empty() || s[0] != 'M') return false;
  s.remove_prefix(1);
  auto small = [&s](int& v, int lo, int hi) {
    if (s.empty() || s[0] < '0' || s[0] > '9') return false;
    v = 0;
    int digits = 0;
    while (!s.empty() && s[0] >= '0' && s[0] <= '9' && digits < 2) {
      v = v * 10 + (s[0] - '0');
      s.remove_prefix(1);
      ++digits;
    }
    return v >= lo && v <= hi;
  };
  if (!small(month, 1, 12) || s.empty() || s[0] != '.') return false;
  s.remove_prefix(1);
  if (!small(week, 1, 5) || s.empty() || s[0] != '.') return false;
  s.remove_prefix(1);
  if (!small(day, 0, 6)) return false;
  time = 7200;
  if (!s.empty() && s[0] == '/') {
    s.remove_prefix(1);
    // TZif version 3 allows -167..167 hours here.
    if (!parse_hms(s, time, 167)) return false;
  }
  return true;
}

// The day of month of the `week`th (5: last) `weekday` of a month.
int rule_day(int year, int month, int week, int wday) {
  int first = weekday(year, month, 1);
  int day = 1 + (wday - first + 7) % 7 + (week - 1) * 7;
  while (day > days_in_month(year, month)) day -= 7;
  return day;
}

}  // namespace

// Howard Hinnant's civil-date algorithms (public domain).
std::int64_t days_from_civil(int year, int month, int day) noexcept {
  std::int64_t y = year - (month <= 2 ? 1 : 0);
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * static_cast<unsigned>(month + (month > 2 ? -3 : 9)) + 2) / 5 + static_cast<unsigned>(day) - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

local_time civil_from_seconds(std::int64_t seconds) noexcept {
  std::int64_t days = seconds >= 0 ? seconds / seconds_per_day : -((-seconds + seconds_per_day - 1) / seconds_per_day);
  std::int64_t rem = seconds - days * seconds_per_day;
  std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  local_time t;
  t.year = static_cast<int>(static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0));
  t.month = static_cast<int>(m);
  t.day = static_cast<int>(d);
  t.hour = static_cast<int>(rem / 3600);
  t.minute = static_cast<int>(rem % 3600 / 60);
  t.second = static_cast<int>(rem % 60);
  return t;
}

std::int64_t seconds_from_civil(const local_time& t) noexcept {
  return days_from_civil(t.year, t.month, t.day) * seconds_per_day + t.hour * 3600 + t.minute * 60 + t.second;
}

int weekday(int year, int month, int day) noexcept {
  std::int64_t d = days_from_civil(year, month, day);
  return static_cast<int>(d >= -4 ? (d + 4) % 7 : (d + 5) % 7 + 6);
}

int days_in_month(int year, int month) noexcept {
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2) {
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return leap ? 29 : 28;
  }
  return days[(month - 1) % 12];
}

expected<time_zone::yearly_rule> parse_posix_tz(std::string_view s) {
  const std::string text(s);
  auto bad = [&text](const char* why) { return bad_zone("rule '" + text + "'", why); };
  time_zone::yearly_rule r;
  if (!parse_zone_abbrev(s)) return bad("no standard time name");
  std::int32_t west = 0;
  if (!parse_hms(s, west, 24)) return bad("no standard offset");
  r.std_offset = -west;
  if (s.empty()) return r;
  if (!parse_zone_abbrev(s)) return bad("a daylight time name is malformed");
  r.dst_offset = r.std_offset + 3600;
  if (!s.empty() && s[0] != ',') {
    if (!parse_hms(s, west, 24)) return bad("the daylight offset is malformed");
    r.dst_offset = -west;
  }
  if (s.empty() || s[0] != ',') return bad("daylight saving without a rule");
  s.remove_prefix(1);
  if (!parse_rule_date(s, r.start_month, r.start_week, r.start_weekday, r.start_time))
    return bad("the start of daylight saving is not of the form Mm.w.d[/time]");
  if (s.empty() || s[0] != ',') return bad("no end of daylight saving");
  s.remove_prefix(1);
  if (!parse_rule_date(s, r.end_month, r.end_week, r.end_weekday, r.end_time))
    return bad("the end of daylight saving is not of the form Mm.w.d[/time]");
  if (!s.empty()) return bad("trailing characters");
  return r;
}

time_zone time_zone::utc() { return fixed("UTC", 0); }

time_zone time_zone::fixed(std::string name, std::int32_t offset_seconds) {
  time_zone z;
  z.name_ = std::move(name);
  z.initial_offset_ = std::clamp(offset_seconds, -max_offset, max_offset);
  return z;
}

expected<time_zone> time_zone::from_tzif(std::string name, std::string_view bytes) {
  reader in(bytes);
  tzif_header h;
  if (!read_header(in, h)) return bad_zone(name, "not a TZif file");
  std::size_t v1 = block_size(h, 4);
  if (h.typecnt == 0 || v1 == 0 || !in.has(v1)) return bad_zone(name, "a truncated or inconsistent v1 block");
  std::size_t time_size = 4;
  if (h.version >= '2') {
    // Skip the 32-bit block; the 64-bit one that follows is authoritative.
    in.skip(v1);
    if (!read_header(in, h)) return bad_zone(name, "no second header");
    time_size = 8;
    std::size_t v2 = block_size(h, 8);
    if (h.typecnt == 0 || v2 == 0 || !in.has(v2)) return bad_zone(name, "a truncated or inconsistent v2 block");
  }
  std::vector<std::int64_t> times(h.timecnt);
  for (auto& t : times) t = time_size == 8 ? in.i64() : static_cast<std::int32_t>(in.u32());
  std::vector<unsigned char> indices(h.timecnt);
  for (auto& i : indices) i = in.u8();
  std::vector<std::int32_t> offsets(h.typecnt);
  for (auto& o : offsets) {
    o = static_cast<std::int32_t>(in.u32());
    in.skip(2);  // isdst, abbreviation index: not needed to compute times
    if (o < -max_offset || o > max_offset) return bad_zone(name, "an offset out of range");
  }
  in.skip(h.charcnt + std::size_t{h.leapcnt} * (time_size + 4) + h.isstdcnt + h.isutcnt);

  time_zone z;
  z.name_ = std::move(name);
  z.initial_offset_ = offsets[0];
  z.transitions_.reserve(times.size());
  for (std::size_t i = 0; i < times.size(); ++i) {
    if (indices[i] >= h.typecnt) return bad_zone(z.name_, "a transition names no time type");
    if (i > 0 && times[i] <= times[i - 1]) return bad_zone(z.name_, "transitions out of order");
    z.transitions_.push_back({times[i], offsets[indices[i]]});
  }
  if (time_size == 8) {
    auto footer = in.rest();
    if (footer.size() < 2 || footer[0] != '\n') return bad_zone(z.name_, "no footer");
    auto end = footer.find('\n', 1);
    if (end == std::string_view::npos) return bad_zone(z.name_, "an unterminated footer");
    auto rule_text = footer.substr(1, end - 1);
    if (!rule_text.empty()) {
      auto rule = parse_posix_tz(rule_text);
      if (!rule) return bad_zone(z.name_, rule.error().message());
      z.rule_ = *rule;
      if (z.transitions_.empty() && !rule->dst_offset) z.initial_offset_ = rule->std_offset;
    }
  }
  return z;
}

std::vector<time_zone::transition> time_zone::rule_transitions(int year) const {
  const auto& r = *rule_;
  if (!r.dst_offset) return {{days_from_civil(year, 1, 1) * seconds_per_day - r.std_offset, r.std_offset}};
  // A rule's times are local: the start in standard time, the end in daylight time.
  epoch_seconds start = days_from_civil(year, r.start_month, rule_day(year, r.start_month, r.start_week, r.start_weekday)) *
                            seconds_per_day + r.start_time - r.std_offset;
  epoch_seconds end = days_from_civil(year, r.end_month, rule_day(year, r.end_month, r.end_week, r.end_weekday)) *
                          seconds_per_day + r.end_time - *r.dst_offset;
  std::vector<transition> out{{start, *r.dst_offset}, {end, r.std_offset}};
  if (out[1].at < out[0].at) std::swap(out[0], out[1]);
  return out;
}

std::int32_t time_zone::offset_at(epoch_seconds t) const noexcept {
  bool past_table = transitions_.empty() || t >= transitions_.back().at;
  if (rule_ && past_table) {
    if (!rule_->dst_offset) return rule_->std_offset;
    int year = civil_from_seconds(t).year;
    std::int32_t offset = rule_->std_offset;
    for (int y = year - 1; y <= year + 1; ++y)
      for (const auto& tr : rule_transitions(y))
        if (tr.at <= t) offset = tr.offset;
    return offset;
  }
  if (transitions_.empty() || t < transitions_.front().at) return initial_offset_;
  auto it = std::upper_bound(transitions_.begin(), transitions_.end(), t,
                             [](epoch_seconds v, const transition& tr) { return v < tr.at; });
  return std::prev(it)->offset;
}

local_time time_zone::to_local(epoch_seconds t) const noexcept { return civil_from_seconds(t + offset_at(t)); }

local_instants time_zone::to_instants(const local_time& wall) const noexcept {
  const std::int64_t s = seconds_from_civil(wall);
  // No zone changes its offset twice within two days, so the offsets in
  // force a day either side are the only candidates.
  std::int32_t before = offset_at(s - seconds_per_day - max_offset);
  std::int32_t after = offset_at(s + seconds_per_day + max_offset);
  std::vector<epoch_seconds> found;
  for (std::int32_t off : {before, offset_at(s), after}) {
    epoch_seconds u = s - off;
    if (offset_at(u) == off && std::find(found.begin(), found.end(), u) == found.end()) found.push_back(u);
  }
  std::sort(found.begin(), found.end());
  local_instants out;
  if (!found.empty()) {
    out.first = found.front();
    if (found.size() > 1) out.second = found.back();
    return out;
  }
  // In a gap: the wall time read with the offset before the gap lies past
  // the transition, read with the one after it lies before it. The first
  // instant after the gap is the transition, the first instant past the
  // earlier reading whose offset differs from it.
  out.in_gap = true;
  epoch_seconds lo = s - after, hi = s - before;  // offset_at(lo) == before, offset_at(hi) == after
  if (lo > hi) std::swap(lo, hi);
  std::int32_t lo_offset = offset_at(lo);
  while (hi - lo > 1) {
    epoch_seconds mid = lo + (hi - lo) / 2;
    if (offset_at(mid) == lo_offset) lo = mid; else hi = mid;
  }
  out.first = hi;
  return out;
}

}  // namespace trellis
