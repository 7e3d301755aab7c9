// The process log on spdlog: a synchronous logger whose one sink (stderr, or
// a stream for tests) uses our own formatter, so that the text and JSON lines
// are exactly those documented in docs/operations.md#logs.

#include "trellis/log.hpp"

#include "trellis/detail/json_text.hpp"

#include <atomic>
#include <ctime>
#include <memory>
#include <mutex>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace trellis::log {

namespace {

/// The fields of the record being written on this thread: spdlog's record
/// carries only the message, so `write` lends them to the formatter, which
/// runs on the same thread (the logger is synchronous).
thread_local const fields* current_fields = nullptr;

spdlog::level::level_enum to_spdlog(level l) {
  switch (l) {
    case level::trace:
      return spdlog::level::trace;
    case level::debug:
      return spdlog::level::debug;
    case level::info:
      return spdlog::level::info;
    case level::warn:
      return spdlog::level::warn;
    case level::error:
      return spdlog::level::err;
    case level::off:
      break;
  }
  return spdlog::level::off;
}

level from_spdlog(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return level::trace;
    case spdlog::level::debug:
      return level::debug;
    case spdlog::level::info:
      return level::info;
    case spdlog::level::warn:
      return level::warn;
    case spdlog::level::err:
    case spdlog::level::critical:
      return level::error;
    default:
      return level::off;
  }
}

const char* upper_name(level l) {
  switch (l) {
    case level::trace:
      return "TRACE";
    case level::debug:
      return "DEBUG";
    case level::info:
      return "INFO";
    case level::warn:
      return "WARN";
    case level::error:
      return "ERROR";
    case level::off:
      break;
  }
  return "OFF";
}

/// `text` on one text line: newlines, carriage returns and other control
/// characters escaped, so a message never starts a line of its own.
void append_plain_text(std::string& out, std::string_view text) {
  static const char* hex = "0123456789abcdef";
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    } else {
      out += ch;
    }
  }
}

void append_timestamp(std::string& out, std::chrono::system_clock::time_point when) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
  auto seconds = static_cast<std::time_t>(ms / 1000);
  auto millis = static_cast<int>(ms % 1000);
  if (millis < 0) {  // before 1970
    millis += 1000;
    --seconds;
  }
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  out += buf;
  out += '.';
  out += static_cast<char>('0' + millis / 100);
  out += static_cast<char>('0' + millis / 10 % 10);
  out += static_cast<char>('0' + millis % 10);
  out += 'Z';
}

class line_formatter final : public spdlog::formatter {
 public:
  line_formatter(log::format style, std::string process) : style_(style), process_(std::move(process)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    static const fields none{};
    auto text = format_line(style_, msg.time, from_spdlog(msg.level), process_,
                            std::string_view{msg.payload.data(), msg.payload.size()},
                            current_fields != nullptr ? *current_fields : none);
    dest.append(text.data(), text.data() + text.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<line_formatter>(style_, process_);
  }

 private:
  log::format style_;
  std::string process_;
};

std::shared_ptr<spdlog::logger> make_logger(const options& opts, std::ostream* out) {
  spdlog::sink_ptr sink;
  if (out != nullptr) {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*out, true);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  }
  sink->set_formatter(std::make_unique<line_formatter>(opts.style, opts.process));
  auto logger = std::make_shared<spdlog::logger>("trellis", std::move(sink));
  logger->set_level(to_spdlog(opts.min_level));
  // A warning or error reaches the terminal (or journal) at once; stderr is
  // unbuffered anyway, the flag matters for a test's stream.
  logger->flush_on(spdlog::level::trace);
  return logger;
}

/// The logger in use; replaced whole by `configure` (atomic shared_ptr
/// access, so a record written meanwhile uses the old or the new one).
/// Never destroyed: an engine in a static object may log while the
/// program's statics are torn down.
std::shared_ptr<spdlog::logger>& current() {
  static auto* logger = new std::shared_ptr<spdlog::logger>(make_logger(options{}, nullptr));
  return *logger;
}

std::shared_ptr<spdlog::logger> logger() { return std::atomic_load(&current()); }

}  // namespace

std::optional<level> parse_level(std::string_view name) {
  for (auto l : {level::trace, level::debug, level::info, level::warn, level::error, level::off}) {
    if (name == to_string(l)) {
      return l;
    }
  }
  return std::nullopt;
}

std::optional<format> parse_format(std::string_view name) {
  if (name == "text") {
    return format::text;
  }
  if (name == "json") {
    return format::json;
  }
  return std::nullopt;
}

const char* to_string(level l) {
  switch (l) {
    case level::trace:
      return "trace";
    case level::debug:
      return "debug";
    case level::info:
      return "info";
    case level::warn:
      return "warn";
    case level::error:
      return "error";
    case level::off:
      break;
  }
  return "off";
}

void configure(const options& opts, std::ostream* out) { std::atomic_store(&current(), make_logger(opts, out)); }

bool enabled(level l) { return l != level::off && logger()->should_log(to_spdlog(l)); }

void write(level l, std::string_view message, const fields& f) {
  if (l == level::off) {
    return;
  }
  auto lg = logger();
  auto sl = to_spdlog(l);
  if (!lg->should_log(sl)) {
    return;
  }
  current_fields = &f;
  lg->log(sl, spdlog::string_view_t{message.data(), message.size()});
  current_fields = nullptr;
}

namespace {

/// Calls `text(key, value)` or `number(key, value)` for each field `f`
/// sets, in the one order both formats use.
template <typename Text, typename Number>
void for_each_field(const fields& f, Text text, Number number) {
  auto t = [&](const char* key, std::string_view v) {
    if (!v.empty()) {
      text(key, v);
    }
  };
  auto n = [&](const char* key, const std::optional<std::int64_t>& v) {
    if (v) {
      number(key, *v);
    }
  };
  t("workflow", f.workflow);
  n("node", f.node);
  t("task", f.task);
  t("error_type", f.error_type);
  n("attempt", f.attempt);
}

}  // namespace

std::string format_line(format style, std::chrono::system_clock::time_point when, level l, std::string_view process,
                        std::string_view message, const fields& f) {
  std::string out;
  out.reserve(64 + process.size() + message.size());
  if (style == format::text) {
    append_timestamp(out, when);
    out += ' ';
    out += upper_name(l);
    out += ' ';
    append_plain_text(out, process);
    out += ": ";
    append_plain_text(out, message);
    for_each_field(
        f,
        [&](const char* key, std::string_view v) {
          out += ' ';
          out += key;
          out += '=';
          append_plain_text(out, v);
        },
        [&](const char* key, std::int64_t v) {
          out += ' ';
          out += key;
          out += '=';
          out += std::to_string(v);
        });
  } else {
    out += "{\"ts\":\"";
    append_timestamp(out, when);
    out += "\",\"level\":\"";
    out += to_string(l);
    out += "\",\"process\":";
    detail::append_json_string(out, process);
    out += ",\"msg\":";
    detail::append_json_string(out, message);
    for_each_field(
        f,
        [&](const char* key, std::string_view v) {
          out += ",\"";
          out += key;
          out += "\":";
          detail::append_json_string(out, v);
        },
        [&](const char* key, std::int64_t v) {
          out += ",\"";
          out += key;
          out += "\":";
          out += std::to_string(v);
        });
    out += '}';
  }
  out += '\n';
  return out;
}

std::string cut(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) {
    return std::string{text};
  }
  auto end = max_bytes;
  // Back off continuation bytes so that no character is split.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return std::string{text.substr(0, end)} + "...";
}

}  // namespace trellis::log
