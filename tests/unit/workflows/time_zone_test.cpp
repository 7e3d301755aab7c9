#include "trellis/time_zone.hpp"
#include "trellis/zoneinfo.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>

using trellis::local_time;
using trellis::time_zone;

namespace {

std::string zone_bytes(const std::string& name) {
  std::ifstream in("/usr/share/zoneinfo/" + name, std::ios::binary);
  REQUIRE(in);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The C library's offset at an instant in a zone. Only for this test: it sets
// TZ for the whole process, which is why the engine does not do this.
long libc_offset(const std::string& name, std::int64_t t) {
  ::setenv("TZ", name.c_str(), 1);
  ::tzset();
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::localtime_r(&tt, &tm);
  return tm.tm_gmtoff;
}

}  // namespace

TEST_CASE("civil dates convert both ways and know their weekday", "[unit][schedule][tz]") {
  CHECK(trellis::days_from_civil(1970, 1, 1) == 0);
  CHECK(trellis::days_from_civil(2000, 3, 1) == 11017);
  CHECK(trellis::weekday(1970, 1, 1) == 4);
  CHECK(trellis::weekday(2026, 12, 7) == 1);
  CHECK(trellis::weekday(1969, 12, 28) == 0);
  CHECK(trellis::days_in_month(2024, 2) == 29);
  CHECK(trellis::days_in_month(2100, 2) == 28);
  CHECK(trellis::days_in_month(2000, 2) == 29);
  for (std::int64_t s : {std::int64_t{0}, std::int64_t{-1}, std::int64_t{951'782'400}, std::int64_t{4'102'444'799},
                         std::int64_t{-86'401}}) {
    CHECK(trellis::seconds_from_civil(trellis::civil_from_seconds(s)) == s);
  }
  CHECK(trellis::civil_from_seconds(-1) == local_time{1969, 12, 31, 23, 59, 59});
}

TEST_CASE("a zone read from its TZif file gives the C library's offsets from 1970 to 2080", "[unit][schedule][tz]") {
  for (const char* name : {"Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
                           "Australia/Lord_Howe", "America/Sao_Paulo", "Pacific/Chatham", "UTC"}) {
    INFO(name);
    auto z = trellis::detail::load_time_zone(name);
    REQUIRE(z);
    CHECK(z->name() == name);
    int mismatches = 0;
    // Every 7 hours and 13 minutes: every hour of the day and day of the week, over 110 years.
    for (std::int64_t t = 0; t < 3'471'292'800; t += 7 * 3600 + 13 * 60) {
      if (z->offset_at(t) != libc_offset(name, t) && ++mismatches < 5) {
        CHECK(z->offset_at(t) == libc_offset(name, t));
        INFO("at " << t);
      }
    }
    CHECK(mismatches == 0);
  }
  ::unsetenv("TZ");
  ::tzset();
}

TEST_CASE("a wall time maps to its instants: one, two in an overlap, the gap's end in a gap", "[unit][schedule][tz]") {
  auto berlin = time_zone::from_tzif("Europe/Berlin", zone_bytes("Europe/Berlin"));
  REQUIRE(berlin);
  auto normal = berlin->to_instants({2026, 7, 1, 12, 0, 0});
  CHECK(normal.first == trellis::seconds_from_civil({2026, 7, 1, 10, 0, 0}));
  CHECK_FALSE(normal.in_gap);
  CHECK_FALSE(normal.second);
  auto gap = berlin->to_instants({2026, 3, 29, 2, 30, 0});
  CHECK(gap.in_gap);
  CHECK(gap.first == trellis::seconds_from_civil({2026, 3, 29, 1, 0, 0}));
  auto twice = berlin->to_instants({2026, 10, 25, 2, 30, 0});
  CHECK(twice.first == trellis::seconds_from_civil({2026, 10, 25, 0, 30, 0}));
  REQUIRE(twice.second);
  CHECK(*twice.second == trellis::seconds_from_civil({2026, 10, 25, 1, 30, 0}));
  CHECK(berlin->to_local(twice.first) == local_time{2026, 10, 25, 2, 30, 0});
  CHECK(berlin->to_local(*twice.second) == local_time{2026, 10, 25, 2, 30, 0});
}

TEST_CASE("a truncated or corrupted TZif file is refused, never read past its end", "[unit][schedule][tz]") {
  auto bytes = zone_bytes("Europe/Berlin");
  REQUIRE(time_zone::from_tzif("Europe/Berlin", bytes));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto z = time_zone::from_tzif("cut", std::string_view(bytes).substr(0, n));
    if (z) FAIL("a prefix of " << n << " bytes was accepted");
  }
  // Counts that claim more than the file holds.
  for (std::size_t at : {20u, 24u, 28u, 32u, 36u, 40u}) {
    auto corrupt = bytes;
    corrupt[at] = '\x7f';
    INFO("count at " << at);
    CHECK_FALSE(time_zone::from_tzif("corrupt", corrupt));
  }
  CHECK_FALSE(time_zone::from_tzif("empty", ""));
  CHECK_FALSE(time_zone::from_tzif("text", "TZif but not really"));
}

TEST_CASE("zone names are checked before they become paths", "[unit][schedule][tz]") {
  for (const char* bad : {"", "../etc/passwd", "/etc/passwd", "Europe/../../x", "Nowhere/Atlantis", "Europe",
                          "a b", "Europe/Berlin/"}) {
    INFO(bad);
    auto z = trellis::detail::load_time_zone(bad);
    REQUIRE_FALSE(z);
    CHECK(z.error().code() == trellis::errc::invalid_config);
  }
  CHECK(trellis::detail::load_time_zone("UTC"));
}

TEST_CASE("POSIX TZ rules: the footer forms zoneinfo uses", "[unit][schedule][tz]") {
  auto cet = trellis::parse_posix_tz("CET-1CEST,M3.5.0,M10.5.0/3");
  REQUIRE(cet);
  CHECK(cet->std_offset == 3600);
  CHECK(cet->dst_offset == 7200);
  CHECK(cet->end_time == 3 * 3600);
  auto fixed = trellis::parse_posix_tz("<+0530>-5:30");
  REQUIRE(fixed);
  CHECK(fixed->std_offset == 19800);
  CHECK_FALSE(fixed->dst_offset);
  auto chatham = trellis::parse_posix_tz("<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45");
  REQUIRE(chatham);
  CHECK(chatham->dst_offset == 13 * 3600 + 45 * 60);
  for (const char* bad : {"", "C-1", "CET", "CET-1CEST", "CET-1CEST,J60,J300", "CET-1CEST,M13.5.0,M10.5.0",
                          "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.5.0,M10.5.0/200", "CET-1CEST,M3.5.0,M10.5.0x"}) {
    INFO(bad);
    CHECK_FALSE(trellis::parse_posix_tz(bad));
  }
}
