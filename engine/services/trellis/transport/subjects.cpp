#include "trellis/transport/subjects.hpp"

#include <cctype>
#include <cstdint>
#include <utility>

namespace trellis::detail {

namespace {

constexpr std::size_t max_token_length = 64;
constexpr std::size_t max_namespace_length = 32;

std::string describe(char c) {
  auto code = static_cast<unsigned char>(c);
  if (std::isprint(code) != 0 && c != ' ') {
    return std::string{"'"} + c + "'";
  }
  return "byte " + std::to_string(static_cast<int>(code));
}

// Namespaces are lower case only (see make()), so this is one-to-one.
std::string upper(const std::string& ns) {
  std::string out;
  out.reserve(ns.size());
  for (char c : ns) {
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

expected<void> validate_partition(int partition) {
  if (partition < 0) {
    return error{errc::invalid_config,
                 "partition " + std::to_string(partition) + " is negative; partitions start at 0"};
  }
  return {};
}

// 64-bit FNV-1a as 16 hex digits: stable across processes, builds and
// machines (std::hash is not), and short enough for a consumer name.
std::string hex_hash(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = digits[h & 0xf];
    h >>= 4;
  }
  return out;
}

}  // namespace

expected<void> validate_token(std::string_view what, std::string_view token) {
  if (token.empty()) {
    return error{errc::invalid_config, std::string{what} + " is empty; a NATS subject token needs 1 character or more"};
  }
  if (token.size() > max_token_length) {
    return error{errc::invalid_config, std::string{what} + " '" + std::string{token.substr(0, max_token_length)} +
                                           "...' is longer than " + std::to_string(max_token_length) + " characters"};
  }
  for (char c : token) {
    auto code = static_cast<unsigned char>(c);
    // '.' separates subject tokens, '*' and '>' are wildcards, '/' and '\'
    // would escape the directory JetStream makes for a stream or consumer.
    bool bad = code < 0x21 || code > 0x7e || c == '.' || c == '*' || c == '>' || c == '/' || c == '\\';
    if (bad) {
      return error{errc::invalid_config, std::string{what} + " '" + std::string{token} + "' contains " + describe(c) +
                                             "; allowed are printable ASCII characters except space . * > / \\"};
    }
  }
  return {};
}

expected<subject_space> subject_space::make(std::string_view ns) {
  if (ns.empty() || ns.size() > max_namespace_length) {
    return error{errc::invalid_config, "namespace '" + std::string{ns} + "' must have 1 to " +
                                           std::to_string(max_namespace_length) + " characters"};
  }
  for (std::size_t i = 0; i < ns.size(); ++i) {
    char c = ns[i];
    bool lower_or_digit = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool ok = lower_or_digit || (i > 0 && (c == '_' || c == '-'));
    if (!ok) {
      return error{errc::invalid_config, "namespace '" + std::string{ns} + "' contains " + describe(c) +
                                             " at position " + std::to_string(i) +
                                             "; allowed are a-z 0-9 and, after the first character, _ and -"};
    }
  }
  return subject_space{std::string{ns}};
}

subject_space::subject_space(std::string ns) : ns_(std::move(ns)), prefix_("trellis." + ns_ + ".") {}

std::string subject_space::task_token(std::string_view name) {
  // `~` starts only hashed tokens, so a name can never pass for the hash of
  // another.
  if (!name.empty() && name.front() != '~' && validate_token("task", name)) {
    return std::string{name};
  }
  return "~" + hex_hash(name);
}

expected<std::string> subject_space::task(std::string_view queue, std::string_view task) const {
  if (auto ok = validate_token("queue", queue); !ok) {
    return ok.error();
  }
  return prefix_ + "task." + std::string{queue} + "." + task_token(task);
}

expected<std::string> subject_space::queue_tasks(std::string_view queue) const {
  if (auto ok = validate_token("queue", queue); !ok) {
    return ok.error();
  }
  return prefix_ + "task." + std::string{queue} + ".*";
}

std::string subject_space::task_in_all_queues(std::string_view task) const {
  return prefix_ + "task.*." + task_token(task);
}

std::string subject_space::all_tasks() const { return prefix_ + "task.>"; }

std::optional<std::pair<std::string, std::string>> subject_space::task_subject_parts(std::string_view subject) const {
  auto head = prefix_ + "task.";
  if (subject.substr(0, head.size()) != head) {
    return std::nullopt;
  }
  auto rest = subject.substr(head.size());
  auto dot = rest.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == rest.size() ||
      rest.find('.', dot + 1) != std::string_view::npos) {
    return std::nullopt;
  }
  return std::pair{std::string{rest.substr(0, dot)}, std::string{rest.substr(dot + 1)}};
}

expected<std::string> subject_space::event(int partition) const {
  if (auto ok = validate_partition(partition); !ok) {
    return ok.error();
  }
  return prefix_ + "event." + std::to_string(partition);
}

std::string subject_space::all_events() const { return prefix_ + "event.>"; }

expected<std::string> subject_space::submit(int partition) const {
  if (auto ok = validate_partition(partition); !ok) {
    return ok.error();
  }
  return prefix_ + "submit." + std::to_string(partition);
}

std::string subject_space::control() const { return prefix_ + "ctl.>"; }

std::string subject_space::lifecycle() const { return prefix_ + "lifecycle"; }

expected<std::string> subject_space::control(std::string_view verb) const {
  if (auto ok = validate_token("control verb", verb); !ok) {
    return ok.error();
  }
  return prefix_ + "ctl." + std::string{verb};
}

expected<std::string> subject_space::control(std::string_view verb, int partition) const {
  auto subject = control(verb);
  if (!subject) {
    return subject;
  }
  if (auto ok = validate_partition(partition); !ok) {
    return ok.error();
  }
  return *subject + "." + std::to_string(partition);
}

expected<std::string> subject_space::partition_control(int partition) const {
  if (auto ok = validate_partition(partition); !ok) {
    return ok.error();
  }
  return prefix_ + "ctl.*." + std::to_string(partition);
}

expected<std::string> subject_space::done(std::string_view workflow_id) const {
  if (auto ok = validate_token("workflow id", workflow_id); !ok) {
    return ok.error();
  }
  return prefix_ + "done." + std::string{workflow_id};
}

std::string subject_space::task_stream() const { return "TRELLIS_" + upper(ns_) + "_TASKS"; }

std::string subject_space::event_stream() const { return "TRELLIS_" + upper(ns_) + "_EVENTS"; }

expected<std::string> subject_space::queue_consumer(std::string_view queue) const {
  if (auto ok = validate_token("queue", queue); !ok) {
    return ok.error();
  }
  return "worker-" + std::string{queue};
}

std::string subject_space::all_queues_consumer() const { return "all-queues"; }

expected<std::string> subject_space::queue_task_consumer(std::string_view queue, std::string_view task) const {
  if (auto ok = validate_token("queue", queue); !ok) {
    return ok.error();
  }
  std::string key{queue};
  key.push_back('\0');  // no queue name holds it, so (queue, task) pairs stay apart
  key.append(task);
  return "task-" + hex_hash(key);
}

std::string subject_space::all_queues_task_consumer(std::string_view task) const {
  return "all-task-" + hex_hash(task);
}

expected<std::string> subject_space::event_consumer(int partition) const {
  if (auto ok = validate_partition(partition); !ok) {
    return ok.error();
  }
  return "dispatcher-" + std::to_string(partition);
}

std::string subject_space::task_max_deliveries_advisory() const {
  return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + task_stream() + ".*";
}

std::string subject_space::lost_stream() const { return "TRELLIS_" + upper(ns_) + "_LOST"; }

std::string subject_space::revoked_stream() const { return "TRELLIS_" + upper(ns_) + "_REVOKED"; }

std::string subject_space::upload_stream() const { return "TRELLIS_" + upper(ns_) + "_UPLOADS"; }

std::string subject_space::rate_bucket() const { return "TRELLIS_" + upper(ns_) + "_RATES"; }

std::string subject_space::all_uploads() const { return prefix_ + "upload.>"; }

expected<std::string> subject_space::upload_piece(std::string_view id, std::size_t piece) const {
  if (auto ok = validate_token("upload id", id); !ok) {
    return ok.error();
  }
  return prefix_ + "upload." + std::string{id} + "." + std::to_string(piece);
}

expected<std::string> subject_space::upload_pieces(std::string_view id) const {
  if (auto ok = validate_token("upload id", id); !ok) {
    return ok.error();
  }
  return prefix_ + "upload." + std::string{id} + ".>";
}

expected<std::string> subject_space::lost_consumer(int partition) const {
  if (auto ok = validate_partition(partition); !ok) {
    return ok.error();
  }
  return "lost-" + std::to_string(partition);
}

}  // namespace trellis::detail
