#include "trellis/error.hpp"

namespace trellis {

const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::malformed_envelope:
      return "malformed_envelope";
    case errc::unsupported_version:
      return "unsupported_version";
    case errc::unknown_task:
      return "unknown_task";
    case errc::bad_arguments:
      return "bad_arguments";
    case errc::payload_too_large:
      return "payload_too_large";
    case errc::task_failed:
      return "task_failed";
    case errc::time_limit_exceeded:
      return "time_limit_exceeded";
    case errc::workflow_failed:
      return "workflow_failed";
    case errc::not_found:
      return "not_found";
    case errc::timeout:
      return "timeout";
    case errc::broker_unavailable:
      return "broker_unavailable";
    case errc::store_locked:
      return "store_locked";
    case errc::store_corrupt:
      return "store_corrupt";
    case errc::store_failed:
      return "store_failed";
    case errc::invalid_workflow:
      return "invalid_workflow";
    case errc::invalid_config:
      return "invalid_config";
    case errc::shutting_down:
      return "shutting_down";
    case errc::revoked:
      return "revoked";
    case errc::unsigned_message:
      return "unsigned_message";
    case errc::bad_signature:
      return "bad_signature";
    case errc::process_pool_failed:
      return "process_pool_failed";
  }
  // Only reachable through a cast of an out-of-range integer; a name is still
  // better than undefined behaviour in a log line.
  return "unknown_error";
}

std::string to_string(const error& err) {
  std::string out = to_string(err.code());
  out += ": ";
  out += err.message();
  return out;
}

}  // namespace trellis
