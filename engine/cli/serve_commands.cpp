#include "cli/serve_commands.hpp"

#include "cli/cli_output.hpp"
#include "cli/waiting.hpp"

#include "trellis/cluster_http.hpp"
#include "trellis/log.hpp"

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>

namespace trellis::cli {

namespace {

/// Waits up to `tick` for SIGTERM or SIGINT (blocked by the caller);
/// whether one came.
bool stop_signal_within(std::chrono::milliseconds tick) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  timespec wait{static_cast<time_t>(tick.count() / 1000), static_cast<long>((tick.count() % 1000) * 1'000'000)};
  int sig = sigtimedwait(&set, nullptr, &wait);
  if (sig == SIGTERM || sig == SIGINT) {
    log::info() << "signal " << sig << ": draining";
    return true;
  }
  return false;
}

}  // namespace

std::string http_token(const std::string& token_file) {
  if (token_file.empty()) {
    const char* env = std::getenv("TRELLIS_HTTP_TOKEN");
    return env != nullptr ? std::string{env} : std::string{};
  }
  std::ifstream in{token_file};
  std::string token;
  if (!in || !std::getline(in, token)) {
    throw setup_error(errc::invalid_config, "--http-token-file " + token_file + ": cannot be read");
  }
  while (!token.empty() && (token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.empty()) {
    throw setup_error(errc::invalid_config, "--http-token-file " + token_file + ": the first line is empty");
  }
  return token;
}

int serve_embedded(const engine_config& cfg, task_registry tasks) {
  engine eng{cfg, std::move(tasks)};
  for (const auto& h : eng.restored()) {
    announce_workflow(h.id(), "resumed");
  }
  log::info() << "serving store " << cfg.store_path << " until SIGTERM"
              << (cfg.http.listen.empty() ? std::string{} : std::string{"; HTTP on "} + cfg.http.listen);
  while (!stop_signal_within(std::chrono::seconds{1})) {
    // A store that refused a write stopped the engine: say so and exit,
    // rather than serve an engine that runs nothing.
    auto probe = eng.workflows(workflow_query{std::nullopt, 1, ""});
    if (!probe && exit_code_for(probe.error().code()) == exit_store) {
      std::cerr << "error: " << to_string(probe.error()) << "; unfinished workflows stay in " << cfg.store_path
                << " (serve again once the store is usable)\n";
      return exit_store;
    }
  }
  eng.shutdown();
  return exit_terminated;
}

int serve_dashboard(const detail::cluster_options& opts) {
  auto server = detail::start_cluster_http(opts, "dashboard", {}, {});
  if (!server) {
    std::cerr << "error: " << to_string(server.error()) << '\n';
    return exit_code_for(server.error().code());
  }
  while (!stop_signal_within(std::chrono::seconds{1})) {
  }
  (*server)->stop();
  return exit_terminated;
}

}  // namespace trellis::cli
