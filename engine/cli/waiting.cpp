#include "waiting.hpp"

#include "cli_output.hpp"

#include <iostream>

namespace trellis::cli {

void announce_workflow(const std::string& id, const std::string& what) {
  std::cerr << "trellis: workflow " << id << ' ' << what << std::endl;
}

int report_timed_out(const std::string& id, const wait_limit& limit, const std::string& hint) {
  std::cerr << "trellis: timeout: workflow " << id << " not finished after " << limit.timeout_ms()
            << " ms (--timeout-ms); " << hint << std::endl;
  return exit_timed_out;
}

}  // namespace trellis::cli
