#include "trellis/actors/interfaces.hpp"

#include <caf/sec.hpp>

namespace trellis::detail {

error from_caf_error(const caf::error& e, const std::string& rendered) {
  if (e.category() == trellis_error_category) {
    std::string message;
    if (e.context().match_elements<std::string>()) {
      message = e.context().get_as<std::string>(0);
    }
    return error{static_cast<errc>(e.code()), message};
  }
  if (e == caf::sec::request_timeout) {
    return error{errc::timeout, "an actor did not answer in time: " + rendered};
  }
  return error{errc::shutting_down, "engine actor unavailable: " + rendered};
}

}  // namespace trellis::detail
