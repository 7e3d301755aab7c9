#include "waiting.hpp"

#include "cli_output.hpp"

#include "trellis/log.hpp"

#include <string>

namespace trellis::cli {

// Through the process log, so that `--log-format json` keeps every stderr
// line JSON. The id stays in the message, which reads as a sentence in
// both formats, rather than in a field repeated after it.
void announce_workflow(const std::string& id, const std::string& what) {
  log::write(log::level::info, "workflow " + id + " " + what);
}

int report_timed_out(const std::string& id, const wait_limit& limit, const std::string& hint) {
  log::write(log::level::warn, "timeout: workflow " + id + " not finished after " + std::to_string(limit.timeout_ms()) +
                                   " ms (--timeout-ms); " + hint);
  return exit_timed_out;
}

}  // namespace trellis::cli
