#include "trellis/actors/process_pool.hpp"

#include "trellis/actors/zygote.hpp"
#include "trellis/log.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace trellis::detail {

namespace {

using clock = std::chrono::steady_clock;

// The zygote answers a spawn as soon as its fork returns; this bound only
// matters when it is stuck (then the pool is as good as failed).
constexpr auto spawn_wait = std::chrono::seconds{5};
// A dead or killed child is reaped by the zygote at once; its exit status
// names the signal in the outcome, and a status that does not come within
// this bound is reported as unknown rather than holding the slot.
constexpr auto exit_status_wait = std::chrono::seconds{2};
// How long the destructor waits for the zygote to exit after end of file
// before it kills it.
constexpr auto zygote_exit_wait = std::chrono::seconds{2};

/// The worker's side of the control socket: spawn and kill requests out,
/// spawned children and exit statuses in (read by a thread of its own).
class zygote_link {
 public:
  explicit zygote_link(zygote_process z) : zygote_(z), reader_([this] { read_loop(); }) {}

  ~zygote_link() {
    stopping_ = true;
    // Wakes the reader's recvmsg with end of file, and tells the zygote to
    // kill its children and exit.
    ::shutdown(zygote_.control_fd, SHUT_RDWR);
    reader_.join();
    ::close(zygote_.control_fd);
    reap_zygote(true);
  }
  zygote_link(const zygote_link&) = delete;
  zygote_link& operator=(const zygote_link&) = delete;

  /// A new child: its pid and the worker's end of its socket; nothing when
  /// the zygote cannot fork or is gone.
  std::optional<std::pair<pid_t, int>> spawn() {
    std::unique_lock<std::mutex> lock{mutex_};
    auto id = ++requests_;
    if (failed_ || !send(control_message{control_kind::spawn, 0, 0, id})) {
      return std::nullopt;
    }
    changed_.wait_for(lock, spawn_wait, [&] { return failed_ || spawned_.count(id) != 0; });
    auto it = spawned_.find(id);
    if (it == spawned_.end()) {
      return std::nullopt;
    }
    auto child = it->second;
    spawned_.erase(it);
    if (child.second < 0) {
      log::error() << "process pool: the zygote could not fork a child: " << std::strerror(-child.second);
      return std::nullopt;
    }
    return child;
  }

  /// SIGKILL to `pid`, by the zygote (which knows whether it is still its
  /// unreaped child).
  void kill(pid_t pid) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (!failed_) {
      send(control_message{control_kind::kill, pid, 0, 0});
    }
  }

  /// The wait status of `pid` once the zygote reaped it; nothing after
  /// `exit_status_wait` or when the zygote is gone.
  std::optional<int> wait_exit(pid_t pid) {
    std::unique_lock<std::mutex> lock{mutex_};
    changed_.wait_for(lock, exit_status_wait, [&] { return failed_ || exits_.count(pid) != 0; });
    auto it = exits_.find(pid);
    if (it == exits_.end()) {
      return std::nullopt;
    }
    auto status = it->second;
    exits_.erase(it);
    return status;
  }

  bool failed() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return failed_;
  }
  std::string failure() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return failure_;
  }

 private:
  /// Under `mutex_`, which also keeps messages of several threads apart.
  bool send(const control_message& m) {
    for (;;) {
      if (::send(zygote_.control_fd, &m, sizeof m, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof m)) {
        return true;
      }
      if (errno != EINTR) {
        return false;
      }
    }
  }

  void read_loop() {
    for (;;) {
      control_message m;
      iovec io{&m, sizeof m};
      msghdr msg{};
      msg.msg_iov = &io;
      msg.msg_iovlen = 1;
      alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int))] = {};
      msg.msg_control = space;
      msg.msg_controllen = sizeof space;
      auto n = ::recvmsg(zygote_.control_fd, &msg, MSG_CMSG_CLOEXEC);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      int passed = -1;
      for (auto* c = CMSG_FIRSTHDR(&msg); n > 0 && c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int))) {
          std::memcpy(&passed, CMSG_DATA(c), sizeof(int));
        }
      }
      if (n != static_cast<ssize_t>(sizeof m) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
        if (passed >= 0) {
          ::close(passed);
        }
        lost_zygote(n < 0 ? std::string{"the control socket failed: "} + std::strerror(errno)
                          : n == 0 ? std::string{} : "the zygote sent a malformed control message");
        return;
      }
      std::lock_guard<std::mutex> guard{mutex_};
      switch (m.kind) {
        case control_kind::spawned:
          if (passed >= 0 && m.pid > 0) {
            spawned_[m.request] = {m.pid, passed};
            passed = -1;
          }
          break;
        case control_kind::spawn_failed:
          spawned_[m.request] = {0, -std::max(1, m.status)};
          break;
        case control_kind::exited:
          exits_[m.pid] = m.status;
          break;
        default:
          break;
      }
      if (passed >= 0) {
        ::close(passed);  // a descriptor with a message that carries none
      }
      changed_.notify_all();
    }
  }

  /// The control socket ended: the zygote died (or the pool is being
  /// destroyed). Reaps it and says why once.
  void lost_zygote(const std::string& problem) {
    std::string why;
    if (!stopping_) {
      auto status = reap_zygote(false);
      why = "the process pool's zygote (pid " + std::to_string(zygote_.pid) + ") " +
            (status ? describe_wait_status(*status) : problem.empty() ? "closed its control socket" : problem) +
            "; no handler child can be replaced";
      log::error() << why;
    }
    {
      std::lock_guard<std::mutex> guard{mutex_};
      failed_ = true;
      failure_ = why.empty() ? "the process pool stopped" : why;
    }
    changed_.notify_all();
  }

  /// Waits for the zygote's exit (at most `zygote_exit_wait`, then kills
  /// it when `force`); its wait status, once.
  std::optional<int> reap_zygote(bool force) {
    std::lock_guard<std::mutex> guard{reap_mutex_};
    if (reaped_) {
      return std::nullopt;
    }
    auto until = clock::now() + zygote_exit_wait;
    int status = 0;
    for (;;) {
      auto r = ::waitpid(zygote_.pid, &status, WNOHANG);
      if (r == zygote_.pid || (r < 0 && errno != EINTR)) {
        reaped_ = true;
        return r == zygote_.pid ? std::optional<int>{status} : std::nullopt;
      }
      if (clock::now() >= until) {
        if (!force) {
          return std::nullopt;
        }
        ::kill(zygote_.pid, SIGKILL);
        force = false;
        until = clock::now() + zygote_exit_wait;
      }
      // Pacing a poll of waitpid: the zygote's exit is the condition, and
      // it follows end of file on its socket within microseconds.
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
  }

  const zygote_process zygote_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::uint64_t requests_ = 0;
  /// Spawn request -> (pid, fd), or (0, -errno) when it failed.
  std::map<std::uint64_t, std::pair<pid_t, int>> spawned_;
  std::map<pid_t, int> exits_;
  bool failed_ = false;
  std::string failure_;
  std::mutex reap_mutex_;
  bool reaped_ = false;
  std::thread reader_;  // last: starts once everything above exists
};

/// One slot's child, and the pipe that wakes its wait for a terminate.
struct slot_child {
  pid_t pid = -1;
  int fd = -1;
  int wake[2] = {-1, -1};
  std::mutex mutex;  // guards `running` and the wake pipe's use
  std::uint64_t jobs = 0;
  std::uint64_t running = 0;  // the job in the child now; 0 between jobs

  slot_child() {
    if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
      wake[0] = wake[1] = -1;
    }
  }
  ~slot_child() {
    for (int fd_ : {fd, wake[0], wake[1]}) {
      if (fd_ >= 0) {
        ::close(fd_);
      }
    }
  }
  slot_child(const slot_child&) = delete;
  slot_child& operator=(const slot_child&) = delete;
};

}  // namespace

class process_pool_core {
 public:
  process_pool_core(zygote_process z, std::size_t slots, std::size_t max_frame_bytes, std::shared_ptr<metrics> stats)
      : link_(z), max_frame_bytes_(max_frame_bytes), stats_(std::move(stats)) {
    for (std::size_t i = 0; i < slots; ++i) {
      slots_.push_back(std::make_unique<slot_child>());
    }
  }

  ~process_pool_core() {
    // Children see end of file and exit; the link then closes the control
    // socket, and the zygote kills whatever child is left.
    for (auto& s : slots_) {
      if (s->fd >= 0) {
        ::close(s->fd);
        s->fd = -1;
      }
    }
  }

  bool replace(slot_child& s) {
    auto child = link_.spawn();
    if (!child) {
      return false;
    }
    s.pid = child->first;
    s.fd = child->second;
    return true;
  }

  /// Closes the slot's socket and waits for its child's exit status.
  std::optional<int> drop(slot_child& s) {
    ::close(s.fd);
    s.fd = -1;
    auto status = link_.wait_exit(s.pid);
    s.pid = -1;
    return status;
  }

  child_outcome run(std::size_t slot, const child_request& request, const std::string& queue,
                    std::optional<clock::time_point> deadline, const std::shared_ptr<progress_sink>& progress) {
    auto& s = *slots_.at(slot);
    {
      std::lock_guard<std::mutex> guard{s.mutex};
      s.running = ++s.jobs;
      char drain[64];
      while (s.wake[0] >= 0 && ::read(s.wake[0], drain, sizeof drain) > 0) {
        // a terminate meant for an earlier job
      }
    }
    struct not_running {
      slot_child& s;
      ~not_running() {
        std::lock_guard<std::mutex> guard{s.mutex};
        s.running = 0;
      }
    } done{s};
    child_outcome out;
    if (link_.failed() || (s.fd < 0 && !replace(s))) {
      out.message = unavailable_reason();
      return out;
    }
    auto frame = encode_frame(request);
    if (!write_frame(s.fd, frame)) {
      // The idle child died (the OOM killer, someone's kill): not the
      // task's fault; a fresh child takes the call.
      drop(s);
      if (link_.failed() || !replace(s) || !write_frame(s.fd, frame)) {
        out.message = unavailable_reason();
        return out;
      }
    }
    const pid_t pid = s.pid;
    frame_read in;
    // Progress frames until the answer, all within the one deadline.
    for (;;) {
      in = read_frame(s.fd, max_frame_bytes_, deadline, s.wake[0]);
      if (in.status != frame_status::complete) {
        break;
      }
      auto reply = decode_reply(in.body, max_frame_bytes_);
      if (!reply) {
        in.problem = reply.error().message();
        break;
      }
      if (reply->kind == child_reply_kind::progress) {
        if (progress) {
          progress->report(reply->progress);
        }
        continue;
      }
      out.how = child_outcome::kind::replied;
      out.reply = std::move(*reply);
      return out;
    }
    if (in.status == frame_status::timed_out || in.status == frame_status::woken || !in.problem.empty()) {
      link_.kill(pid);
    }
    auto status = drop(s);
    if (in.status == frame_status::closed && link_.failed()) {
      // Killed with the zygote, not by its task: handed back, not failed.
      out.message = unavailable_reason();
      return out;
    }
    auto what = std::string{"child "} + std::to_string(pid);
    auto ended = status ? describe_wait_status(*status) : std::string{"exit status unknown"};
    switch (in.status) {
      case frame_status::timed_out:
        out.how = child_outcome::kind::timed_out;
        out.message = "attempt still running at its time limit of " +
                      std::to_string(request.hard_limit_ms.value_or(0)) + " ms: " + what +
                      " was killed and replaced";
        stats_->add(counter::children_killed, queue, request.task);
        break;
      case frame_status::woken:
        out.how = child_outcome::kind::terminated;
        out.message = "terminated by a revoke: " + what + " was killed and replaced";
        break;
      default:
        out.how = child_outcome::kind::lost;
        out.message = in.problem.empty()
                          ? what + " " + ended + " while running " + request.task
                          : what + " sent a broken reply while running " + request.task + " (" + in.problem +
                                "); it was killed (" + ended + ") and replaced";
        stats_->add(counter::children_crashed, queue, request.task);
        break;
    }
    // The next task of the slot finds its child ready.
    if (!link_.failed()) {
      replace(s);
    }
    return out;
  }

  std::uint64_t next_job(std::size_t slot) const {
    auto& s = *slots_.at(slot);
    std::lock_guard<std::mutex> guard{s.mutex};
    return s.jobs + 1;
  }

  void terminate(std::size_t slot, std::uint64_t job) {
    auto& s = *slots_.at(slot);
    std::lock_guard<std::mutex> guard{s.mutex};
    if (s.running == job && s.wake[1] >= 0) {
      char one = 1;
      [[maybe_unused]] auto n = ::write(s.wake[1], &one, 1);  // full pipe: a wake is pending anyway
    }
  }

  bool failed() const { return link_.failed(); }
  std::string failure() const { return link_.failure(); }

  void prespawn() {
    for (auto& s : slots_) {
      if (s->fd < 0) {
        replace(*s);
      }
    }
  }

 private:
  std::string unavailable_reason() const {
    auto why = link_.failure();
    return why.empty() ? std::string{"no handler child could be started"} : why;
  }

  zygote_link link_;
  const std::size_t max_frame_bytes_;
  std::shared_ptr<metrics> stats_;
  std::vector<std::unique_ptr<slot_child>> slots_;
};

expected<std::shared_ptr<process_pool>> process_pool::start(std::shared_ptr<const task_registry> tasks,
                                                            std::size_t slots, const canvas_limits& limits,
                                                            std::shared_ptr<metrics> stats) {
  child_limits bounds;
  // One frame carries a task's arguments (request) or its result and an
  // error text (reply): the largest task or outcome message bounds both.
  bounds.max_frame_bytes = std::max(max_task_message_bytes(limits), max_outcome_message_bytes(limits));
  bounds.max_result_bytes = limits.max_result_bytes;
  auto zygote = fork_zygote(std::move(tasks), bounds);
  if (!zygote) {
    return zygote.error();
  }
  auto core = std::make_unique<process_pool_core>(*zygote, std::max<std::size_t>(1, slots), bounds.max_frame_bytes,
                                                  std::move(stats));
  core->prespawn();
  if (core->failed()) {
    return error{errc::invalid_config, "pool: " + core->failure()};
  }
  return std::shared_ptr<process_pool>{new process_pool{std::move(core)}};
}

process_pool::process_pool(std::unique_ptr<process_pool_core> core) : core_(std::move(core)) {}
process_pool::~process_pool() = default;

child_outcome process_pool::run(std::size_t slot, const child_request& request, const std::string& queue,
                                std::optional<clock::time_point> deadline,
                                const std::shared_ptr<progress_sink>& progress) {
  return core_->run(slot, request, queue, deadline, progress);
}

std::uint64_t process_pool::next_job(std::size_t slot) const { return core_->next_job(slot); }

void process_pool::terminate(std::size_t slot, std::uint64_t job) { core_->terminate(slot, job); }

bool process_pool::failed() const { return core_->failed(); }

std::string process_pool::failure() const { return core_->failure(); }

}  // namespace trellis::detail
