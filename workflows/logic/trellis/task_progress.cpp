#include "trellis/task_progress.hpp"

#include "trellis/defaults.hpp"
#include "trellis/node_state.hpp"

namespace trellis {

std::optional<std::string> custom_state_problem(std::string_view name) {
  if (name.empty()) {
    return std::string{"a custom state name must not be empty"};
  }
  auto shown = [&name] { return "'" + std::string{name.substr(0, 70)} + (name.size() > 70 ? "...'" : "'"); };
  if (name.size() > defaults::max_custom_state_chars) {
    return "custom state name " + shown() + " is " + std::to_string(name.size()) + " characters long; at most " +
           std::to_string(defaults::max_custom_state_chars) + " are allowed";
  }
  for (char c : name) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
      return "custom state name " + shown() + " may hold only A-Z, 0-9 and _";
    }
  }
  // UNKNOWN is what a damaged state number prints as.
  if (node_state_from_string(name) || name == "UNKNOWN") {
    return "custom state name " + shown() + " is a built-in state; pick a name of your own";
  }
  return std::nullopt;
}

std::string clip_progress_message(std::string message) {
  if (message.size() <= defaults::max_progress_message_bytes) {
    return message;
  }
  auto cut = defaults::max_progress_message_bytes;
  // Back up over continuation bytes (10xxxxxx) to the start of a character.
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) {
    --cut;
  }
  message.resize(cut);
  return message;
}

}  // namespace trellis
