#include "trellis/cron_expression.hpp"
#include "trellis/zoneinfo.hpp"

#include <catch2/catch.hpp>

#include <string>

using trellis::cron_expression;
using trellis::epoch_seconds;
using trellis::local_time;
using trellis::time_zone;

namespace {

epoch_seconds utc(int y, int mo, int d, int h, int mi) {
  return trellis::seconds_from_civil(local_time{y, mo, d, h, mi, 0});
}

cron_expression cron(const char* text) {
  auto c = cron_expression::parse(text);
  INFO(text);
  REQUIRE(c);
  return *c;
}

time_zone zone(const char* name) {
  auto z = trellis::detail::load_time_zone(name);
  INFO(name);
  REQUIRE(z);
  return *z;
}

}  // namespace

TEST_CASE("a cron expression is five fields of values, names, ranges, steps and lists", "[unit][schedule][cron]") {
  auto c = cron("*/15 9-17 * jan-MAR mon-fri");
  CHECK(c.text() == "*/15 9-17 * jan-MAR mon-fri");
  CHECK(c.matches({2026, 1, 5, 9, 45, 0}));     // a Monday
  CHECK_FALSE(c.matches({2026, 1, 5, 9, 44, 0}));
  CHECK_FALSE(c.matches({2026, 1, 4, 9, 45, 0}));  // a Sunday
  CHECK_FALSE(c.matches({2026, 4, 6, 9, 45, 0}));  // April
  CHECK_FALSE(c.matches({2026, 1, 5, 18, 0, 0}));
  auto list = cron("0,30 1-3/2,20 * * *");
  CHECK(list.matches({2026, 1, 1, 1, 30, 0}));
  CHECK(list.matches({2026, 1, 1, 3, 0, 0}));
  CHECK_FALSE(list.matches({2026, 1, 1, 2, 0, 0}));
  CHECK(list.matches({2026, 1, 1, 20, 0, 0}));
  // `5/20` runs from 5 to the end of the field.
  auto start_step = cron("5/20 * * * *");
  CHECK(start_step.matches({2026, 1, 1, 0, 45, 0}));
  CHECK_FALSE(start_step.matches({2026, 1, 1, 0, 40, 0}));
  // 0 and 7 are both Sunday.
  CHECK(cron("0 0 * * 7").matches({2026, 1, 4, 0, 0, 0}));
  CHECK(cron("0 0 * * 0").matches({2026, 1, 4, 0, 0, 0}));
}

TEST_CASE("both day fields restricted match either day, as cron does", "[unit][schedule][cron]") {
  auto either = cron("0 0 13 * fri");
  CHECK(either.matches({2026, 2, 13, 0, 0, 0}));  // Friday the 13th
  CHECK(either.matches({2026, 3, 13, 0, 0, 0}));  // a Friday... the 13th of March is a Friday too
  CHECK(either.matches({2026, 1, 13, 0, 0, 0}));  // a Tuesday, the 13th
  CHECK(either.matches({2026, 1, 2, 0, 0, 0}));   // a Friday, not the 13th
  CHECK_FALSE(either.matches({2026, 1, 3, 0, 0, 0}));
  auto fridays = cron("0 0 * * fri");
  CHECK_FALSE(fridays.matches({2026, 1, 13, 0, 0, 0}));
  CHECK(fridays.matches({2026, 1, 2, 0, 0, 0}));
  auto thirteenths = cron("0 0 13 * *");
  CHECK(thirteenths.matches({2026, 1, 13, 0, 0, 0}));
  CHECK_FALSE(thirteenths.matches({2026, 1, 2, 0, 0, 0}));
}

TEST_CASE("a malformed or impossible cron expression is refused, naming the field", "[unit][schedule][cron]") {
  struct bad_case {
    const char* text;
    const char* says;
  };
  for (auto [text, says] : {bad_case{"* * * *", "5 fields"}, bad_case{"* * * * * *", "5 fields"},
                            bad_case{"60 * * * *", "minute"}, bad_case{"* 24 * * *", "hour"},
                            bad_case{"* * 0 * *", "day-of-month"}, bad_case{"* * 32 * *", "day-of-month"},
                            bad_case{"* * * 13 *", "month"}, bad_case{"* * * foo *", "month"},
                            bad_case{"* * * * 8", "day-of-week"}, bad_case{"5-1 * * * *", "backwards"},
                            bad_case{"*/0 * * * *", "step"}, bad_case{"*/61 * * * *", "step"},
                            bad_case{"1,,2 * * * *", "empty list item"}, bad_case{"-1 * * * *", "minute"},
                            bad_case{"0 0 30 2 *", "matches no date"}, bad_case{"0 0 31 4,6 *", "matches no date"},
                            bad_case{"999999999 * * * *", "minute"}}) {
    INFO(text);
    auto c = cron_expression::parse(text);
    REQUIRE_FALSE(c);
    CHECK(c.error().code() == trellis::errc::invalid_config);
    CHECK(c.error().message().find(says) != std::string::npos);
  }
  CHECK_FALSE(cron_expression::parse(std::string(300, '*')));
  // With the day of week restricted too, the OR rule makes it fire on Mondays.
  CHECK(cron_expression::parse("0 0 30 2 mon"));
  CHECK(cron_expression::parse("0 0 29 2 *"));  // leap days
}

TEST_CASE("the next fire time in UTC", "[unit][schedule][cron]") {
  auto z = time_zone::utc();
  CHECK(cron("*/15 * * * *").next_after(utc(2026, 1, 1, 0, 7), z) == utc(2026, 1, 1, 0, 15));
  CHECK(cron("*/15 * * * *").next_after(utc(2026, 1, 1, 0, 15), z) == utc(2026, 1, 1, 0, 30));
  CHECK(cron("*/15 * * * *").next_after(utc(2026, 1, 1, 0, 15) - 1, z) == utc(2026, 1, 1, 0, 15));
  CHECK(cron("0 0 1 1 *").next_after(utc(2026, 6, 1, 0, 0), z) == utc(2027, 1, 1, 0, 0));
  CHECK(cron("0 0 29 2 *").next_after(utc(2026, 1, 1, 0, 0), z) == utc(2028, 2, 29, 0, 0));
  CHECK(cron("30 4 * * mon").next_after(utc(2026, 1, 1, 0, 0), z) == utc(2026, 1, 5, 4, 30));
  CHECK(cron("*/15 * * * *").last_at_or_before(utc(2026, 1, 1, 0, 7), z) == utc(2026, 1, 1, 0, 0));
  CHECK(cron("*/15 * * * *").last_at_or_before(utc(2026, 1, 1, 0, 15), z) == utc(2026, 1, 1, 0, 15));
  CHECK(cron("0 0 29 2 *").last_at_or_before(utc(2027, 1, 1, 0, 0), z) == utc(2024, 2, 29, 0, 0));
}

TEST_CASE("a wall time in a DST gap fires once at the end of the gap; one in an overlap once, at its first occurrence",
          "[unit][schedule][cron][tz]") {
  auto berlin = zone("Europe/Berlin");
  // 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
  auto daily = cron("30 2 * * *");
  CHECK(daily.next_after(utc(2026, 3, 28, 12, 0), berlin) == utc(2026, 3, 29, 1, 0));
  CHECK(daily.next_after(utc(2026, 3, 29, 1, 0), berlin) == utc(2026, 3, 30, 0, 30));
  auto half_hourly = cron("*/30 * * * *");
  CHECK(half_hourly.next_after(utc(2026, 3, 29, 0, 30), berlin) == utc(2026, 3, 29, 1, 0));
  CHECK(half_hourly.next_after(utc(2026, 3, 29, 1, 0), berlin) == utc(2026, 3, 29, 1, 30));
  // 2026-10-25: 03:00 CEST becomes 02:00 CET (01:00 UTC): 02:30 happens twice.
  CHECK(daily.next_after(utc(2026, 10, 24, 12, 0), berlin) == utc(2026, 10, 25, 0, 30));
  CHECK(daily.next_after(utc(2026, 10, 25, 0, 30), berlin) == utc(2026, 10, 26, 1, 30));
  CHECK(half_hourly.next_after(utc(2026, 10, 25, 0, 30), berlin) == utc(2026, 10, 25, 2, 0));  // 03:00 CET
  CHECK(daily.last_at_or_before(utc(2026, 10, 25, 1, 45), berlin) == utc(2026, 10, 25, 0, 30));
  // Past the file's transitions (2037), the footer's rule: CEST in July 2040.
  CHECK(cron("0 12 * * *").next_after(utc(2040, 7, 1, 0, 0), berlin) == utc(2040, 7, 1, 10, 0));
  CHECK(cron("0 12 * * *").next_after(utc(2040, 1, 1, 0, 0), berlin) == utc(2040, 1, 1, 11, 0));
  // Sydney's daylight saving spans the new year.
  auto sydney = zone("Australia/Sydney");
  CHECK(cron("0 12 * * *").next_after(utc(2045, 1, 15, 0, 0), sydney) == utc(2045, 1, 15, 1, 0));
  CHECK(cron("0 12 * * *").next_after(utc(2045, 7, 15, 0, 0), sydney) == utc(2045, 7, 15, 2, 0));
}
