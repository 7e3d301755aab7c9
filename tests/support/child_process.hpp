#pragma once

/// @file
/// A child process for tests that drive the Trellis binaries: started with
/// `posix_spawn`, its stdout and stderr captured to files, stopped by the PID
/// we hold (never by name), and always reaped.

#include "support/files.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;  // POSIX: the environment the child inherits

namespace trellis::test {

/// One running (or finished) child. Not copyable. The destructor of a child
/// that is still running kills it with SIGKILL and reaps it, so a failed test
/// never leaves a process behind.
class child_process {
 public:
  /// Starts `argv[0]` (a path, not searched in PATH) with `argv`. Its stdin
  /// is /dev/null; stdout and stderr are written to `stdout_path` and
  /// `stderr_path` (created or truncated). Files rather than pipes: a chatty
  /// child can never block on a full pipe nobody reads. Throws
  /// `std::runtime_error` when the process cannot be started. `env` entries
  /// ("NAME=value") are set in the child's environment on top of ours
  /// (replacing a variable of the same name).
  child_process(std::vector<std::string> argv, std::string stdout_path, std::string stderr_path,
                std::vector<std::string> env = {})
      : stdout_path_(std::move(stdout_path)), stderr_path_(std::move(stderr_path)) {
    if (argv.empty()) {
      throw std::invalid_argument("child_process: empty argv");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (auto& a : argv) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env) {
      envp.push_back(e.data());
    }
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry{*e};
      auto name = entry.substr(0, entry.find('=') + 1);
      bool replaced = std::any_of(env.begin(), env.end(), [&](const std::string& x) { return x.rfind(name, 0) == 0; });
      if (!replaced) {
        envp.push_back(*e);
      }
    }
    envp.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
    }
  }

  ~child_process() {
    if (!status_) {
      kill(SIGKILL);
      int raw = 0;
      while (::waitpid(pid_, &raw, 0) < 0 && errno == EINTR) {
      }
    }
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const noexcept { return pid_; }

  /// Sends `signal` to this child, by its PID. Does nothing once it is reaped
  /// (the PID may belong to someone else by then).
  void kill(int signal = SIGKILL) {
    if (!status_) {
      ::kill(pid_, signal);
    }
  }

  /// Blocks until the child ends and returns its exit status: the exit code
  /// when it exited, 128 + the signal number when a signal ended it (the
  /// shell's convention).
  int wait() {
    while (!status_) {
      int raw = 0;
      auto r = ::waitpid(pid_, &raw, 0);
      if (r == pid_) {
        status_ = decode(raw);
      } else if (r < 0 && errno != EINTR) {
        throw std::runtime_error("waitpid(" + std::to_string(pid_) + "): " + std::strerror(errno));
      }
    }
    return *status_;
  }

  /// The exit status if the child has ended (reaping it), else nothing.
  std::optional<int> try_wait() {
    if (!status_) {
      int raw = 0;
      if (::waitpid(pid_, &raw, WNOHANG) == pid_) {
        status_ = decode(raw);
      }
    }
    return status_;
  }

  /// Waits at most `timeout` for the child to end; on timeout kills it with
  /// SIGKILL and returns nothing.
  std::optional<int> wait_for(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::milliseconds{1};
    while (!try_wait()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(SIGKILL);
        wait();
        return std::nullopt;
      }
      // Pacing the poll of waitpid; the exit itself is the condition.
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds{20});
    }
    return status_;
  }

  /// Everything the child wrote to stdout so far.
  std::string stdout_text() const { return read_file(stdout_path_).value_or(""); }
  /// Everything the child wrote to stderr so far.
  std::string stderr_text() const { return read_file(stderr_path_).value_or(""); }

 private:
  static int decode(int raw) {
    if (WIFEXITED(raw)) {
      return WEXITSTATUS(raw);
    }
    if (WIFSIGNALED(raw)) {
      return 128 + WTERMSIG(raw);
    }
    return -1;
  }

  pid_t pid_ = -1;
  std::string stdout_path_;
  std::string stderr_path_;
  std::optional<int> status_;
};

/// What a finished command printed and how it ended.
struct command_result {
  /// Exit status as `child_process::wait` reports it; -1 when it timed out.
  int status = -1;
  bool timed_out = false;
  std::string out;
  std::string err;

  /// The last non-empty line of stdout (the machine-readable one), or "".
  std::string last_line() const {
    std::istringstream lines{out};
    std::string last;
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) {
        last = line;
      }
    }
    return last;
  }

  /// Every non-empty line of stdout.
  std::vector<std::string> lines() const {
    std::istringstream text{out};
    std::vector<std::string> all;
    for (std::string line; std::getline(text, line);) {
      if (!line.empty()) {
        all.push_back(line);
      }
    }
    return all;
  }
};

/// Runs `argv` to completion with its output captured in files named by
/// `capture_prefix` (".out" and ".err" appended), killing it after `timeout`.
inline command_result run_command(std::vector<std::string> argv, const std::string& capture_prefix,
                                  std::chrono::milliseconds timeout, std::vector<std::string> env = {}) {
  child_process child{std::move(argv), capture_prefix + ".out", capture_prefix + ".err", std::move(env)};
  command_result r;
  auto status = child.wait_for(timeout);
  r.timed_out = !status;
  r.status = status ? *status : -1;
  r.out = child.stdout_text();
  r.err = child.stderr_text();
  return r;
}

}  // namespace trellis::test
