#include "trellis/defaults.hpp"
#include "trellis/schedule.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using trellis::catchup_kind;
using trellis::overlap_policy;
using trellis::plan_ticks;
using trellis::schedule_clock;
using trellis::schedule_spec;
using trellis::schedule_state;

namespace {

using ticks = std::vector<std::int64_t>;
constexpr auto grace = 5'000ms;

schedule_clock every_10s(overlap_policy overlap, const char* catchup = "skip") {
  schedule_spec spec;
  spec.name = "report";
  spec.every = 10s;
  spec.overlap = overlap;
  spec.catchup = *trellis::parse_catchup(catchup);
  spec.anchor_ms = 0;
  auto c = schedule_clock::make(spec, trellis::time_zone::utc());
  REQUIRE(c);
  return *c;
}

}  // namespace

TEST_CASE("intervals are a whole number and a unit, 1s to 366d", "[unit][schedule]") {
  CHECK(*trellis::parse_interval("30s") == 30s);
  CHECK(*trellis::parse_interval("5m") == 5min);
  CHECK(*trellis::parse_interval("2h") == 2h);
  CHECK(*trellis::parse_interval("1d") == 24h);
  CHECK(*trellis::parse_interval("366d") == 366 * 24h);
  for (const char* bad : {"", "s", "0s", "30", "30x", "-5s", "1.5h", "367d", "99999999999d", "3 s", "1e3s"}) {
    INFO(bad);
    auto every = trellis::parse_interval(bad);
    REQUIRE_FALSE(every);
    CHECK(every.error().code() == trellis::errc::invalid_config);
  }
  CHECK(trellis::interval_text(30s) == "30s");
  CHECK(trellis::interval_text(90s) == "90s");
  CHECK(trellis::interval_text(120min) == "2h");
  CHECK(trellis::interval_text(48h) == "2d");
}

TEST_CASE("policies, names and keys read back as written", "[unit][schedule]") {
  for (const char* p : {"skip", "buffer_one", "allow"}) CHECK(trellis::to_string(*trellis::parse_overlap(p)) == p);
  CHECK_FALSE(trellis::parse_overlap("buffer"));
  CHECK(trellis::to_string(*trellis::parse_catchup("all")) ==
        "all:" + std::to_string(trellis::defaults::schedule_catchup_bound));
  CHECK(trellis::to_string(*trellis::parse_catchup("all:7")) == "all:7");
  CHECK(trellis::to_string(*trellis::parse_catchup("one")) == "one");
  for (const char* bad : {"", "two", "all:", "all:0", "all:10001", "all:-1", "all:99999999999", "all:1x"}) {
    INFO(bad);
    CHECK_FALSE(trellis::parse_catchup(bad));
  }
  CHECK(trellis::check_schedule_name("nightly-report_2"));
  for (const char* bad : {"", "a b", "a:b", "a.b", "ü"}) CHECK_FALSE(trellis::check_schedule_name(bad));
  CHECK_FALSE(trellis::check_schedule_name(std::string(65, 'a')));
  CHECK(trellis::tick_key("report", 1'700'000'000'000) == "schedule:report:1700000000000");
  CHECK(trellis::trigger_key("report", 5) == "schedule:report:trigger:5");
}

TEST_CASE("a schedule is checked when it is made", "[unit][schedule]") {
  schedule_spec spec;
  spec.name = "x";
  spec.cron = "61 * * * *";
  CHECK_FALSE(schedule_clock::make(spec, trellis::time_zone::utc()));
  spec.cron = "";
  spec.every = 500ms;
  CHECK_FALSE(schedule_clock::make(spec, trellis::time_zone::utc()));
  spec.every = 1500ms;
  CHECK_FALSE(schedule_clock::make(spec, trellis::time_zone::utc()));
  spec.every = 10s;
  spec.cron = "* * * * *";
  CHECK_FALSE(schedule_clock::make(spec, trellis::time_zone::utc()));
  spec.cron = "";
  spec.catchup = {catchup_kind::all, 0};
  CHECK_FALSE(schedule_clock::make(spec, trellis::time_zone::utc()));
  spec.catchup = {catchup_kind::all, 3};
  CHECK(schedule_clock::make(spec, trellis::time_zone::utc()));
}

TEST_CASE("an interval schedule ticks at its anchor plus whole intervals", "[unit][schedule]") {
  auto s = every_10s(overlap_policy::allow);
  CHECK(s.next_after(0) == 10'000);
  CHECK(s.next_after(-5) == 10'000);
  CHECK(s.next_after(10'000) == 20'000);
  CHECK(s.next_after(19'999) == 20'000);
  CHECK_FALSE(s.last_at_or_before(9'999));
  CHECK(s.last_at_or_before(10'000) == 10'000);
  CHECK(s.last_at_or_before(29'999) == 20'000);

  auto early = plan_ticks(s, {}, 9'999, false, grace);
  CHECK(early.submit.empty());
  CHECK(early.next_due == 10'000);
  auto first = plan_ticks(s, {}, 10'000, false, grace);
  CHECK(first.submit == ticks{10'000});
  CHECK(first.next.last_tick == 10'000);
  CHECK(first.next.last_submitted == 10'000);
  CHECK(first.next_due == 20'000);
  // Planning again from the recorded state submits nothing more.
  auto again = plan_ticks(s, first.next, 10'500, false, grace);
  CHECK(again.submit.empty());
  CHECK(again.next == first.next);
}

TEST_CASE("planning again from the same state gives the same ticks: a crash before recording repeats the keys",
          "[unit][schedule]") {
  auto s = every_10s(overlap_policy::allow, "all:5");
  schedule_state state;
  state.last_tick = 10'000;
  auto a = plan_ticks(s, state, 45'000, false, grace);
  auto b = plan_ticks(s, state, 45'000, false, grace);
  CHECK(a.submit == ticks{20'000, 30'000, 40'000});
  CHECK(a.submit == b.submit);
  CHECK(a.next == b.next);
}

TEST_CASE("catch-up after downtime: skip, one, or all up to a bound", "[unit][schedule]") {
  schedule_state state;
  state.last_tick = 10'000;
  // Down from 10 s to 62 s: ticks 20 s .. 60 s are due, 60 s is 2 s late.
  SECTION("skip runs only the latest tick, and only while it is at most the grace late") {
    auto s = every_10s(overlap_policy::allow, "skip");
    auto p = plan_ticks(s, state, 62'000, false, grace);
    CHECK(p.submit == ticks{60'000});
    CHECK(p.passed_over >= 1);  // counted, not walked: at least one
    CHECK(p.next.last_tick == 60'000);
    auto late = plan_ticks(s, state, 68'000, false, grace);
    CHECK(late.submit.empty());
    CHECK(late.passed_over >= 1);
    CHECK(late.next.last_tick == 60'000);
    CHECK(late.next_due == 70'000);
  }
  SECTION("one runs the latest tick however late") {
    auto s = every_10s(overlap_policy::allow, "one");
    CHECK(plan_ticks(s, state, 68'000, false, grace).submit == ticks{60'000});
    CHECK(plan_ticks(s, state, 1'000'000'008, false, grace).submit == ticks{1'000'000'000});
  }
  SECTION("all runs every missed tick, the latest N of them") {
    auto all = every_10s(overlap_policy::allow, "all");
    CHECK(plan_ticks(all, state, 68'000, false, grace).submit == ticks{20'000, 30'000, 40'000, 50'000, 60'000});
    auto bounded = every_10s(overlap_policy::allow, "all:2");
    auto p = plan_ticks(bounded, state, 68'000, false, grace);
    CHECK(p.submit == ticks{50'000, 60'000});
    CHECK(p.passed_over >= 1);
    CHECK(p.next.last_tick == 60'000);
  }
  SECTION("a year of downtime of a one-second schedule costs only the bound's worth of work") {
    schedule_spec spec;
    spec.name = "fast";
    spec.every = 1s;
    spec.catchup = {catchup_kind::all, 3};
    spec.overlap = overlap_policy::allow;
    auto s = schedule_clock::make(spec, trellis::time_zone::utc());
    REQUIRE(s);
    auto p = plan_ticks(*s, {}, 31'536'000'000, false, grace);
    CHECK(p.submit == ticks{31'535'998'000, 31'535'999'000, 31'536'000'000});
  }
}

TEST_CASE("overlap: skip passes over a tick while the previous run runs", "[unit][schedule]") {
  auto s = every_10s(overlap_policy::skip, "all");
  schedule_state state;
  state.last_tick = 10'000;
  state.last_submitted = 10'000;
  auto busy = plan_ticks(s, state, 20'000, true, grace);
  CHECK(busy.submit.empty());
  CHECK(busy.passed_over == 1);
  CHECK(busy.next.last_tick == 20'000);
  CHECK(busy.next.last_submitted == 10'000);
  auto free = plan_ticks(s, busy.next, 30'000, false, grace);
  CHECK(free.submit == ticks{30'000});
  // Caught-up ticks overlap the first of them: one runs.
  auto caught_up = plan_ticks(s, free.next, 65'000, false, grace);
  CHECK(caught_up.submit == ticks{40'000});
  CHECK(caught_up.passed_over == 2);
}

TEST_CASE("overlap: buffer_one keeps one tick until the previous run ends", "[unit][schedule]") {
  auto s = every_10s(overlap_policy::buffer_one);
  schedule_state state;
  state.last_tick = 10'000;
  state.last_submitted = 10'000;
  auto buffered = plan_ticks(s, state, 20'000, true, grace);
  CHECK(buffered.submit.empty());
  CHECK(buffered.next.buffered == 20'000);
  auto still_busy = plan_ticks(s, buffered.next, 30'000, true, grace);
  CHECK(still_busy.submit.empty());
  CHECK(still_busy.next.buffered == 20'000);  // the first waits; the later one is passed over
  CHECK(still_busy.passed_over == 1);
  // The previous run ends between ticks: the buffered tick runs then, with its own key.
  auto done = plan_ticks(s, still_busy.next, 33'000, false, grace);
  CHECK(done.submit == ticks{20'000});
  CHECK_FALSE(done.next.buffered);
  CHECK(done.next.last_submitted == 20'000);
  CHECK(done.next.last_tick == 30'000);
  CHECK(done.next_due == 40'000);
  SECTION("with catch-up all, the first runs, the second waits, the rest are passed over") {
    auto all = every_10s(overlap_policy::buffer_one, "all");
    schedule_state from;
    from.last_tick = 10'000;
    auto p = plan_ticks(all, from, 50'000, false, grace);
    CHECK(p.submit == ticks{20'000});
    CHECK(p.next.buffered == 30'000);
    CHECK(p.passed_over == 2);
  }
}

TEST_CASE("overlap: allow starts every tick", "[unit][schedule]") {
  auto s = every_10s(overlap_policy::allow);
  schedule_state state;
  state.last_tick = 10'000;
  CHECK(plan_ticks(s, state, 20'000, true, grace).submit == ticks{20'000});
}

TEST_CASE("resuming passes over the ticks that fell while paused", "[unit][schedule]") {
  auto s = every_10s(overlap_policy::allow, "all");
  schedule_state state;
  state.last_tick = 10'000;
  auto resumed = trellis::resume_state(s, state, 55'000);
  CHECK(resumed.last_tick == 50'000);
  auto p = plan_ticks(s, resumed, 55'000, false, grace);
  CHECK(p.submit.empty());
  CHECK(p.next_due == 60'000);
}

TEST_CASE("a cron schedule ticks in its zone after its anchor", "[unit][schedule][cron]") {
  schedule_spec spec;
  spec.name = "hourly";
  spec.cron = "0 * * * *";
  spec.anchor_ms = 3'600'000 + 1;  // 01:00:00.001 UTC, 1970-01-01
  auto s = schedule_clock::make(spec, trellis::time_zone::fixed("plus-30", 1800));
  REQUIRE(s);
  // Local hours are at :30 UTC in a +00:30 zone.
  CHECK(s->next_after(0) == 3'600'000 + 1'800'000);
  CHECK_FALSE(s->last_at_or_before(3'600'000 + 1'799'999));
  auto p = plan_ticks(*s, {}, 3 * 3'600'000 + 1'800'000 + 10, false, grace);
  CHECK(p.submit == ticks{3 * 3'600'000 + 1'800'000});
  CHECK(p.passed_over == 1);
}
