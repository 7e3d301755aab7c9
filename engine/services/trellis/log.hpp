#pragma once

/// @file
/// The process log: one line per record on stderr (never stdout, which
/// carries only the commands' JSON), with a UTC timestamp, a level and the
/// process's role, as text or as one JSON object per line
/// (docs/operations.md#logs, decision 0026). spdlog writes the lines; this
/// facade keeps its types out of every other header.
///
/// Thread-safe. A record below the configured level costs one atomic load:
/// `line` formats nothing then. Credentials are never passed here: callers
/// log `nats_config::redacted()`, never the configuration itself.

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace trellis::log {

enum class level { trace, debug, info, warn, error, off };
enum class format { text, json };

/// "trace" ... "off"; nullopt for anything else.
std::optional<level> parse_level(std::string_view name);
/// "text" or "json"; nullopt for anything else.
std::optional<format> parse_format(std::string_view name);
/// "trace", "debug", "info", "warn", "error", "off".
const char* to_string(level l);

/// How a process logs; the defaults are those of a process that set none.
struct options {
  level min_level = level::info;
  format style = format::text;
  /// The role in every line: "trellis-worker", "trellis-dispatcher", ...
  std::string process = "trellis";
};

/// Structured fields of a record about a task (a failed attempt, a dead
/// letter); JSON lines carry them as keys, text lines append `key=value`.
/// Empty strings and unset numbers are left out.
struct fields {
  std::string_view workflow;
  std::optional<std::int64_t> node;
  std::string_view task;
  std::string_view error_type;
  std::optional<std::int64_t> attempt;
};

/// Replaces the process log: `out` null writes to stderr, otherwise to
/// `out` (tests), which must outlive the next `configure`.
void configure(const options& opts, std::ostream* out = nullptr);

/// Whether a record at `l` is written.
bool enabled(level l);

/// Writes one record (when `l` is enabled). A message's newlines do not
/// break the line: text escapes them as \n, JSON as JSON does.
void write(level l, std::string_view message, const fields& f = {});

/// One formatted line, ending in '\n' (what `write` hands to spdlog):
/// text `2026-12-06T21:40:01.123Z WARN trellis-worker: message key=value`,
/// JSON `{"ts":"...","level":"warn","process":"...","msg":"...",...}`.
std::string format_line(format style, std::chrono::system_clock::time_point when, level l, std::string_view process,
                        std::string_view message, const fields& f = {});

/// At most `max_bytes` of `text`, cut at a UTF-8 character boundary, with
/// "..." appended when cut (error messages in failure records).
std::string cut(std::string_view text, std::size_t max_bytes);

/// A record built with <<, written when it goes out of scope:
/// `log::warn() << "cannot announce workflow " << id;`
class line {
 public:
  explicit line(level l) : level_(l), on_(enabled(l)) {}
  ~line() {
    if (on_) {
      write(level_, out_.str());
    }
  }
  line(const line&) = delete;
  line& operator=(const line&) = delete;

  template <class T>
  line& operator<<(const T& v) {
    if (on_) {
      out_ << v;
    }
    return *this;
  }

 private:
  level level_;
  bool on_;
  std::ostringstream out_;
};

inline line debug() { return line{level::debug}; }
inline line info() { return line{level::info}; }
inline line warn() { return line{level::warn}; }
inline line error() { return line{level::error}; }

}  // namespace trellis::log
