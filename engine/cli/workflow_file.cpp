#include "cli/workflow_file.hpp"

#include "trellis/submission.hpp"
#include "trellis/value.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace trellis::cli {

std::uintmax_t max_workflow_file_bytes(const canvas_limits& limits) {
  return 2 * static_cast<std::uintmax_t>(limits.max_submission_bytes);
}

expected<canvas> load_workflow_file(const std::string& path, const task_registry& tasks, const canvas_limits& limits,
                                    bool check_tasks) {
  std::error_code ec;
  auto kind = std::filesystem::status(path, ec).type();
  if (kind == std::filesystem::file_type::directory) {
    return error{errc::invalid_workflow, path + ": is a directory, not a workflow file"};
  }
  // Checked before reading: a file is read whole into memory. (A pipe has
  // no size and is read as it comes.)
  if (kind == std::filesystem::file_type::regular) {
    auto size = std::filesystem::file_size(path, ec);
    if (!ec && size > max_workflow_file_bytes(limits)) {
      return error{errc::invalid_workflow, path + ": " + std::to_string(size) + " bytes, over the " +
                                               std::to_string(max_workflow_file_bytes(limits)) +
                                               " bytes a workflow file may have (twice max_submission_bytes)"};
    }
  }
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    return error{errc::invalid_workflow, path + ": cannot be read"};
  }
  std::stringstream text;
  text << in.rdbuf();
  auto v = value_from_json(text.str());
  if (!v) {
    return error{errc::invalid_workflow, path + ": not valid JSON: " + v.error().message()};
  }
  auto c = canvas_from_value(*v, limits);
  if (!c) {
    return error{c.error().code(), path + ": " + c.error().message()};
  }
  // Checked on the file's own shape, so the path names the place in the file.
  if (auto known = check_tasks ? check_tasks_known(*v, tasks) : expected<void>{}; !known) {
    return error{errc::unknown_task, path + ": " + known.error().message()};
  }
  // Before any store is made or message sent: what one submission carries.
  if (auto bytes =
          detail::encode_submission(detail::submission_envelope("size-check", *c), limits.max_submission_bytes);
      !bytes) {
    return error{bytes.error().code(), path + ": " + bytes.error().message()};
  }
  return c;
}

}  // namespace trellis::cli
