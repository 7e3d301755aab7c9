#include "trellis/actors/zygote.hpp"

#include "trellis/actors/child_protocol.hpp"
#include "trellis/actors/task_runner.hpp"
#include "trellis/detail/value_codec.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace trellis::detail {

namespace {

// Exit codes of a child that gives up on its socket; the parent only sees
// them in the "exited with status N" of a lost child.
constexpr int child_exit_broken_frame = 3;
constexpr int child_exit_bad_request = 4;

// An error message is cut to this many bytes in a reply, so that a handler's
// huge what() cannot make its own reply unreadable.
constexpr std::size_t max_reply_message_bytes = 64 * 1024;

std::string cut(std::string text) {
  if (text.size() > max_reply_message_bytes) {
    text.resize(max_reply_message_bytes);
  }
  return text;
}

/// Dies with its parent, also when the parent died before the call (then
/// getppid() is no longer `parent`).
void follow_parent(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) {
    ::_exit(0);
  }
}

/// Closes every descriptor but stdin, stdout, stderr and `keep`: a child
/// must not hold the worker's broker connection, sockets of its sibling
/// children (a sibling would never see end of file) or files.
void close_other_fds(const std::vector<int>& keep) {
  std::vector<int> open;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator{"/proc/self/fd", ec}) {
    const auto name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") == std::string::npos) {
      open.push_back(std::stoi(name));
    }
  }
  for (int fd : open) {
    bool kept = fd <= 2;
    for (int k : keep) {
      kept = kept || fd == k;
    }
    if (!kept) {
      ::close(fd);  // includes the directory iterator's own, already closed
    }
  }
}

/// Sends the handlers' progress to the worker as `progress` frames ahead of
/// each reply: at most one per `interval`, so that a handler reporting per
/// row does not pay a system call per row. A report that comes sooner is
/// kept, and a thread of its own sends the latest when the interval is up,
/// also when the handler reports nothing more (it may wait a long time);
/// `close` sends what is left right before the reply. One per child; the
/// thread starts with the first report that has to wait.
class progress_channel {
 public:
  explicit progress_channel(int fd) : fd_(fd) {}
  progress_channel(const progress_channel&) = delete;
  progress_channel& operator=(const progress_channel&) = delete;
  // The child ends with _exit: the thread is never joined.

  /// A call starts: reports of earlier calls are dropped from now on (a
  /// thread of a handler's that outlived its call).
  std::uint64_t open() {
    std::lock_guard<std::mutex> guard{mutex_};
    pending_.reset();
    return ++call_;
  }

  void report(std::uint64_t call, const task_progress& latest) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (call != call_ || closed_ == call) {
      return;
    }
    pending_ = latest;
    if (std::chrono::steady_clock::now() - last_sent_ >= interval) {
      send();
      return;
    }
    if (!pump_.joinable()) {
      pump_ = std::thread{[this] { pump(); }};
    }
    due_.notify_one();
  }

  /// Sends what call `call` left pending; nothing of it is sent after.
  void close(std::uint64_t call) {
    std::lock_guard<std::mutex> guard{mutex_};
    if (call == call_) {
      send();
      closed_ = call;
    }
  }

 private:
  // The worker forwards the latest report every 100 ms at most
  // (progress_reporter.hpp); a few frames in between cost little.
  static constexpr std::chrono::milliseconds interval{20};

  void pump() {
    std::unique_lock<std::mutex> lock{mutex_};
    for (;;) {
      due_.wait(lock, [&] { return pending_.has_value(); });
      auto at = last_sent_ + interval;
      if (std::chrono::steady_clock::now() < at) {
        due_.wait_until(lock, at);
        continue;  // sent by a report meanwhile, or closed, or now due
      }
      send();
    }
  }

  /// Under `mutex_`, which also keeps the frames of several threads whole
  /// and a progress frame from landing after its call's reply.
  void send() {
    if (!pending_) {
      return;
    }
    child_reply r;
    r.kind = child_reply_kind::progress;
    r.progress = std::move(*pending_);
    pending_.reset();
    last_sent_ = std::chrono::steady_clock::now();
    // A failed write means the worker dropped this child: the reply's
    // write fails too, and the child exits there.
    (void)write_frame(fd_, encode_frame(r));
  }

  const int fd_;
  std::mutex mutex_;
  std::condition_variable due_;
  std::optional<task_progress> pending_;
  std::chrono::steady_clock::time_point last_sent_{};
  std::uint64_t call_ = 0;
  std::uint64_t closed_ = 0;
  std::thread pump_;
};

/// What a handler's context reports to: its call's share of the channel.
class call_progress final : public progress_sink {
 public:
  call_progress(progress_channel& channel, std::uint64_t call) : channel_(channel), call_(call) {}
  void report(const task_progress& latest) override { channel_.report(call_, latest); }

 private:
  progress_channel& channel_;
  const std::uint64_t call_;
};

/// Runs one call in the child, as task_runner's handler call does in a
/// thread: whatever happens becomes a reply.
child_reply run_call(const task_registry& tasks, child_request request, const child_limits& limits,
                     std::shared_ptr<progress_sink> progress) {
  child_reply reply;
  const auto* entry = tasks.find(request.task);
  if (entry == nullptr) {
    // The child's registry is the worker's own (copied by fork), so the
    // worker never asks for a task it lacks; a reply is still defined.
    reply.kind = child_reply_kind::failure;
    reply.error_type = "worker_lost";
    reply.message = "the handler child has no task '" + request.task.substr(0, 60) + "'";
    return reply;
  }
  auto started = std::chrono::steady_clock::now();
  stop_source stop{request.soft_limit_ms
                       ? std::optional{started + std::chrono::milliseconds{*request.soft_limit_ms}}
                       : std::nullopt};
  task_context ctx{request.task,
                   request.workflow_id,
                   request.node,
                   request.attempt,
                   std::move(request.idempotency_key),
                   std::move(request.kwargs),
                   stop.token(),
                   std::move(progress)};
  try {
    auto r = request.chunk ? run_chunk(entry->handler, ctx, request.args) : entry->handler(ctx, request.args);
    if (r.is_retry()) {
      reply.kind = child_reply_kind::retry;
      reply.message = cut(r.retry().reason);
      if (r.retry().countdown) {
        reply.countdown_ms = std::max<std::int64_t>(0, r.retry().countdown->count());
      }
    } else if (r.is_replace()) {
      // Sent as a value: the canvas is parsed (strictly) by the dispatcher.
      auto canvas_value = to_value(r.replacement().with);
      if (auto size = packed_size(canvas_value); size > limits.max_result_bytes) {
        reply.kind = child_reply_kind::rejected;
        reply.error_type = to_string(errc::payload_too_large);
        reply.message = "the replacement canvas of " + request.task + " is " + std::to_string(size) +
                        " bytes encoded, beyond max_result_bytes (" + std::to_string(limits.max_result_bytes) + ")";
      } else {
        reply.kind = child_reply_kind::replace;
        reply.result = std::move(canvas_value);
      }
    } else if (auto size = packed_size(r.result()); size > limits.max_result_bytes) {
      reply.kind = child_reply_kind::rejected;
      reply.error_type = to_string(errc::payload_too_large);
      reply.message = "the result of " + request.task + " is " + std::to_string(size) +
                      " bytes encoded, beyond max_result_bytes (" + std::to_string(limits.max_result_bytes) +
                      "); return a reference to large data (a key, a path, a URL) or raise the limit";
    } else {
      reply.result = std::move(r.result());
    }
  } catch (const task_rejected& e) {
    reply.kind = child_reply_kind::rejected;
    reply.error_type = to_string(errc::bad_arguments);
    reply.message = cut(e.what());
  } catch (const task_error& e) {
    reply.kind = child_reply_kind::failure;
    reply.error_type = e.type().substr(0, 256);
    reply.message = cut(e.what());
  } catch (const std::exception& e) {
    reply.kind = child_reply_kind::failure;
    reply.error_type = exception_type_name(e);
    reply.message = cut(e.what());
  } catch (...) {
    reply.kind = child_reply_kind::failure;
    reply.error_type = "unknown";
    reply.message = "the handler threw something that is not a std::exception";
  }
  return reply;
}

/// A handler child: serves calls on `fd` until end of file.
[[noreturn]] void child_main(int fd, const task_registry& tasks, const child_limits& limits) {
  // Never destroyed: the child ends with _exit, and its pump thread may
  // still wait on it then.
  auto* progress = new progress_channel{fd};
  for (;;) {
    auto in = read_frame(fd, limits.max_frame_bytes);
    if (in.status == frame_status::closed) {
      ::_exit(0);
    }
    if (in.status != frame_status::complete) {
      ::_exit(child_exit_broken_frame);
    }
    auto request = decode_request(in.body, limits.max_frame_bytes);
    if (!request) {
      ::_exit(child_exit_bad_request);
    }
    auto call = progress->open();
    auto reply = run_call(tasks, std::move(*request), limits, std::make_shared<call_progress>(*progress, call));
    progress->close(call);  // the last report goes before the reply, as on a thread
    auto frame = encode_frame(reply);
    if (frame.size() - frame_header_bytes > limits.max_frame_bytes) {
      // Only an enormous retry reason or error type gets here (results are
      // checked above): replace it by a reply that fits.
      child_reply fits;
      fits.kind = child_reply_kind::rejected;
      fits.error_type = to_string(errc::payload_too_large);
      fits.message = "the handler's reply does not fit in " + std::to_string(limits.max_frame_bytes) + " bytes";
      frame = encode_frame(fits);
    }
    if (!write_frame(fd, frame)) {
      ::_exit(0);  // the worker is gone or dropped this child
    }
  }
}

bool send_control(int fd, const control_message& m, int pass_fd = -1) {
  iovec io{const_cast<control_message*>(&m), sizeof m};
  msghdr msg{};
  msg.msg_iov = &io;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char space[CMSG_SPACE(sizeof(int))] = {};
  if (pass_fd >= 0) {
    msg.msg_control = space;
    msg.msg_controllen = sizeof space;
    auto* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  for (;;) {
    if (::sendmsg(fd, &msg, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof m)) {
      return true;
    }
    if (errno != EINTR) {
      return false;
    }
  }
}

/// The zygote's loop: forks children on request, kills them on request,
/// reports their exits; ends (killing its children) when the worker closes
/// the control socket.
[[noreturn]] void zygote_main(int control, const task_registry& tasks, const child_limits& limits,
                              const sigset_t& child_mask) {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  int exits = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (exits < 0) {
    ::_exit(1);
  }
  std::set<pid_t> children;  // forked and not reaped: the only pids it kills
  auto end = [&](int code) {
    for (pid_t pid : children) {
      ::kill(pid, SIGKILL);
    }
    ::_exit(code);
  };
  const pid_t self = ::getpid();
  for (;;) {
    pollfd fds[2] = {{control, POLLIN, 0}, {exits, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      end(1);
    }
    if (fds[1].revents != 0) {
      signalfd_siginfo info;
      while (::read(exits, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      }
      // One SIGCHLD may stand for several exits: reap all there are.
      int status = 0;
      for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
        children.erase(pid);
        control_message m;
        m.kind = control_kind::exited;
        m.pid = pid;
        m.status = status;
        if (!send_control(control, m)) {
          end(0);
        }
      }
    }
    if (fds[0].revents == 0) {
      continue;
    }
    control_message m;
    auto n = ::recv(control, &m, sizeof m, 0);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n != static_cast<ssize_t>(sizeof m)) {
      end(0);  // end of file (the worker stopped or died), or garbage
    }
    if (m.kind == control_kind::kill) {
      if (children.count(m.pid) != 0) {
        ::kill(m.pid, SIGKILL);
      }
      continue;
    }
    if (m.kind != control_kind::spawn) {
      continue;
    }
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      control_message failed{control_kind::spawn_failed, 0, errno, m.request};
      send_control(control, failed);
      continue;
    }
    pid_t pid = ::fork();
    if (pid == 0) {
      follow_parent(self);
      ::close(control);
      ::close(exits);
      ::close(pair[0]);
      close_other_fds({pair[1]});
      ::sigprocmask(SIG_SETMASK, &child_mask, nullptr);
      child_main(pair[1], tasks, limits);
    }
    int err = errno;
    ::close(pair[1]);
    if (pid < 0) {
      ::close(pair[0]);
      control_message failed{control_kind::spawn_failed, 0, err, m.request};
      send_control(control, failed);
      continue;
    }
    children.insert(pid);
    control_message spawned{control_kind::spawned, pid, 0, m.request};
    bool sent = send_control(control, spawned, pair[0]);
    ::close(pair[0]);
    if (!sent) {
      end(0);
    }
  }
}

}  // namespace

std::size_t thread_count() {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator{"/proc/self/task", ec};
       !ec && it != std::filesystem::directory_iterator{}; it.increment(ec)) {
    ++n;
  }
  return n;
}

expected<zygote_process> fork_zygote(std::shared_ptr<const task_registry> tasks, child_limits limits) {
  if (auto threads = thread_count(); threads != 1) {
    return error{errc::invalid_config,
                 "pool: the process pool must start while the worker has one thread, but it has " +
                     std::to_string(threads) +
                     " (forking a threaded process is unsafe); start it before anything starts a thread"};
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return error{errc::task_failed, std::string{"pool: socketpair: "} + std::strerror(errno)};
  }
  // SIGCHLD is blocked in the zygote (its signalfd reads it); children get
  // back the worker's mask as it was here.
  sigset_t before;
  ::sigprocmask(SIG_SETMASK, nullptr, &before);
  const pid_t worker = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    follow_parent(worker);
    ::close(pair[0]);
    close_other_fds({pair[1]});
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &chld, nullptr);
    // The parent's handlers and dispositions are inherited; SIGCHLD must
    // not be ignored, or the children would be reaped unseen.
    ::signal(SIGCHLD, SIG_DFL);
    zygote_main(pair[1], *tasks, limits, before);
  }
  int err = errno;
  ::close(pair[1]);
  if (pid < 0) {
    ::close(pair[0]);
    return error{errc::task_failed, std::string{"pool: fork: "} + std::strerror(err)};
  }
  return zygote_process{pid, pair[0]};
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char* abbrev = ::sigabbrev_np(sig);
    return std::string{"killed by "} + (abbrev != nullptr ? "SIG" + std::string{abbrev} : "signal " + std::to_string(sig));
  }
  if (WIFEXITED(status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(status));
  }
  return "ended with wait status " + std::to_string(status);
}

}  // namespace trellis::detail
