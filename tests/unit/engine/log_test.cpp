// The process log (trellis/log.hpp): the text and JSON lines, their
// escaping, the level filter, and the log settings of the command line.

#include "trellis/log.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/cluster_settings.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

using namespace trellis;
using trellis::test::temp_dir;
using trellis::test::write_file;

namespace {

/// 2026-12-06T21:40:01.123Z
std::chrono::system_clock::time_point sample_time() {
  return std::chrono::system_clock::time_point{std::chrono::milliseconds{1796593201123LL}};
}

/// Restores the default process log when a test that configured one ends.
struct log_reset {
  ~log_reset() { log::configure(log::options{}); }
};

}  // namespace

TEST_CASE("A text log line is timestamp, level, process and message, then the fields", "[unit][log]") {
  auto plain = log::format_line(log::format::text, sample_time(), log::level::info, "trellis-worker", "worker running");
  CHECK(plain == "2026-12-06T21:40:01.123Z INFO trellis-worker: worker running\n");

  log::fields f;
  f.workflow = "wf1";
  f.node = 3;
  f.task = "charge";
  f.error_type = "card_declined";
  f.attempt = 2;
  auto line = log::format_line(log::format::text, sample_time(), log::level::warn, "trellis-dispatcher", "failed", f);
  CHECK(line ==
        "2026-12-06T21:40:01.123Z WARN trellis-dispatcher: failed workflow=wf1 node=3 task=charge "
        "error_type=card_declined attempt=2\n");
}

TEST_CASE("A text log line escapes newlines, so that a message never starts a line", "[unit][log]") {
  auto line = log::format_line(log::format::text, sample_time(), log::level::error, "trellis",
                               "two\nlines\r and a \"quote\" and a \x01");
  CHECK(line == "2026-12-06T21:40:01.123Z ERROR trellis: two\\nlines\\r and a \"quote\" and a \\x01\n");
}

TEST_CASE("A JSON log line is one object with the documented keys", "[unit][log]") {
  log::fields f;
  f.workflow = "wf1";
  f.node = 0;
  f.task = "fail";
  f.error_type = "std::runtime_error";
  f.attempt = 1;
  auto line = log::format_line(log::format::json, sample_time(), log::level::warn, "trellis-run",
                               "say \"no\"\\\nnext line\ttab \x02 caf\xc3\xa9 bad\xff", f);
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);
  auto j = nlohmann::json::parse(line);
  CHECK(j["ts"] == "2026-12-06T21:40:01.123Z");
  CHECK(j["level"] == "warn");
  CHECK(j["process"] == "trellis-run");
  CHECK(j["msg"] == "say \"no\"\\\nnext line\ttab \x02 caf\xc3\xa9 bad\xef\xbf\xbd");
  CHECK(j["workflow"] == "wf1");
  CHECK(j["node"] == 0);
  CHECK(j["task"] == "fail");
  CHECK(j["error_type"] == "std::runtime_error");
  CHECK(j["attempt"] == 1);

  auto bare =
      nlohmann::json::parse(log::format_line(log::format::json, sample_time(), log::level::info, "trellis", "plain"));
  CHECK(bare.size() == 4);
  CHECK_FALSE(bare.contains("workflow"));
}

TEST_CASE("The level filter drops what is less severe than the configured level", "[unit][log]") {
  log_reset reset;
  std::ostringstream out;
  log::configure(log::options{log::level::warn, log::format::text, "trellis-test"}, &out);
  CHECK_FALSE(log::enabled(log::level::info));
  CHECK(log::enabled(log::level::warn));
  log::info() << "not "
              << "written";
  log::warn() << "written " << 1;
  log::error() << "also written";
  auto text = out.str();
  CHECK(text.find("not written") == std::string::npos);
  CHECK(text.find(" WARN trellis-test: written 1\n") != std::string::npos);
  CHECK(text.find(" ERROR trellis-test: also written\n") != std::string::npos);

  std::ostringstream none;
  log::configure(log::options{log::level::off, log::format::json, "trellis-test"}, &none);
  log::error() << "nothing";
  log::write(log::level::error, "nothing either");
  CHECK(none.str().empty());

  std::ostringstream all;
  log::configure(log::options{log::level::trace, log::format::json, "trellis-test"}, &all);
  log::write(log::level::trace, "fine", log::fields{"wf", 1, "t", "e", 2});
  auto j = nlohmann::json::parse(all.str());
  CHECK(j["level"] == "trace");
  CHECK(j["workflow"] == "wf");
}

TEST_CASE("Log levels and formats are named as documented", "[unit][log]") {
  for (auto name : {"trace", "debug", "info", "warn", "error", "off"}) {
    REQUIRE(log::parse_level(name));
    CHECK(std::string{log::to_string(*log::parse_level(name))} == name);
  }
  CHECK_FALSE(log::parse_level("warning"));
  CHECK_FALSE(log::parse_level("INFO"));
  CHECK(log::parse_format("json") == log::format::json);
  CHECK(log::parse_format("text") == log::format::text);
  CHECK_FALSE(log::parse_format("xml"));
}

TEST_CASE("A failure message is cut at a character boundary", "[unit][log]") {
  CHECK(log::cut("short", 200) == "short");
  CHECK(log::cut("abcdef", 3) == "abc...");
  // "é" is two bytes: cutting after its first byte backs off before it.
  CHECK(log::cut("ab\xc3\xa9z", 3) == "ab...");
}

TEST_CASE("The log settings take the flag over the environment over the config file", "[unit][log]") {
  temp_dir dir;
  auto config = write_file(dir, "trellis.toml", "log_level = \"debug\"\nlog_format = \"json\"\n");
  std::map<std::string, std::string> vars;
  detail::cluster_inputs in;
  in.getenv = [&vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };

  auto defaults = detail::resolve_log_options(in, true);
  REQUIRE(defaults);
  CHECK(defaults->min_level == log::level::info);
  CHECK(defaults->style == log::format::text);

  in.config_flag = config;
  auto from_file = detail::resolve_log_options(in, true);
  REQUIRE(from_file);
  CHECK(from_file->min_level == log::level::debug);
  CHECK(from_file->style == log::format::json);
  // The embedded commands read no config file.
  CHECK(detail::resolve_log_options(in, false)->min_level == log::level::info);

  vars["TRELLIS_LOG_LEVEL"] = "error";
  CHECK(detail::resolve_log_options(in, true)->min_level == log::level::error);
  in.flags["log_level"] = "off";
  CHECK(detail::resolve_log_options(in, true)->min_level == log::level::off);

  in.flags["log_format"] = "yaml";
  auto bad = detail::resolve_log_options(in, true);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code() == errc::invalid_config);
  CHECK(bad.error().message().find("--log-format: 'yaml' is not a log format") != std::string::npos);
}
