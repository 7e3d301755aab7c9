#include "trellis/transport/nats_census.hpp"

#include "trellis/transport/nats_connection.hpp"

namespace trellis::detail {

expected<std::vector<queued_subject>> read_task_census(nats_connection& conn, const std::string& filter) {
  if (auto down = conn.unless_connected("read the task stream's subjects")) {
    return *down;
  }
  auto stream = conn.names().task_stream();
  auto jo = conn.api_options();
  jo.Stream.Info.SubjectsFilter = filter.c_str();
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  auto s = js_GetStreamInfo(&raw, conn.js(), stream.c_str(), &jo, &jerr);
  stream_info_ptr info{raw};
  if (s != NATS_OK) {
    return conn.api_error("cannot read the subjects of " + stream, s, jerr);
  }
  std::vector<queued_subject> out;
  if (info->State.Subjects == nullptr) {
    return out;
  }
  for (int i = 0; i < info->State.Subjects->Count; ++i) {
    const auto& entry = info->State.Subjects->List[i];
    if (entry.Subject == nullptr || entry.Msgs == 0) {
      continue;
    }
    // A subject of another shape (`trellis.<ns>.task.<queue>`, published
    // by a release before decision 0022) is no task subject: left out.
    if (auto parts = conn.names().task_subject_parts(entry.Subject)) {
      out.push_back(queued_subject{std::move(parts->first), std::move(parts->second), entry.Msgs});
    }
  }
  return out;
}

std::shared_ptr<const std::vector<queued_subject>> task_census::current() {
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (now - read_at_ < max_age_) {
      return last_;
    }
  }
  std::unique_lock<std::mutex> reading{reading_, std::try_to_lock};
  if (!reading.owns_lock()) {
    std::lock_guard<std::mutex> guard{mutex_};
    return last_;
  }
  auto read = read_task_census(conn_, conn_.names().all_tasks());
  std::lock_guard<std::mutex> guard{mutex_};
  read_at_ = std::chrono::steady_clock::now();
  if (read) {
    last_ = std::make_shared<const std::vector<queued_subject>>(std::move(*read));
  } else {
    conn_.remember(read.error());
  }
  return last_;
}

std::chrono::steady_clock::time_point task_census::next_due() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return read_at_ + max_age_;
}

}  // namespace trellis::detail
