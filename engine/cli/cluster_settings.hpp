#pragma once

/// @file
/// The configuration of the cluster commands (`worker`, `dispatcher`,
/// `submit`): one table of settings, each with a command-line flag, a
/// `TRELLIS_*` environment variable and a config-file key, and one
/// precedence: **flag > environment > config file > default**. An empty
/// environment variable counts as unset. docs/cluster.md#configuration is
/// this table for users.
///
/// Why not CLI11's own config files and `envname`: CLI11 2.1.2 (Debian 12)
/// applies the config file before the environment, so a file would override
/// a variable, and its parser takes malformed lines without a word. The
/// file format here is a strict TOML subset (see `read_config_file`).
///
/// Secrets (password, token) are read from files or from the environment,
/// never from flags (they would show in `ps`), and no error message contains
/// a secret: errors name the setting and where it came from.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "trellis/cluster_node.hpp"
#include "trellis/error.hpp"
#include "trellis/log.hpp"

namespace trellis::detail {

/// The cluster commands; each uses only some settings.
enum class cluster_command { worker, dispatcher, submit };

/// The whole numbers a numeric setting takes, and its default.
struct whole_number_range {
  std::int64_t low;
  std::int64_t high;
  /// The value when no source gives one.
  std::int64_t fallback;
  /// How the help names the default when the number would not say it
  /// ("one per hardware thread" for a fallback of 0); null: the number.
  const char* fallback_text = nullptr;
};

/// One row of the settings table.
struct cluster_setting {
  /// Config-file key, also the name used in error messages: "ack_wait_ms".
  const char* key;
  /// Command-line flag: "--ack-wait-ms".
  const char* flag;
  /// What the flag takes, for the help: "MS", "FILE"; empty for a switch
  /// (`--insecure`), whose variable and config key take true/false or 1/0.
  const char* value_name;
  /// Environment variable: "TRELLIS_ACK_WAIT_MS".
  const char* env;
  /// What the setting is, for the flag's help; a numeric setting's range
  /// and default are added from `range` (`help_text`).
  const char* help;
  /// The flag and the config file name a file holding the value, while the
  /// environment variable holds the value itself (password, token).
  bool secret_in_file;
  /// Commands that use it.
  bool worker, dispatcher, submit;
  /// A numeric setting's range and default, checked wherever the value
  /// comes from; unset for text, files and switches.
  std::optional<whole_number_range> range = std::nullopt;

  bool used_by(cluster_command c) const {
    return c == cluster_command::worker ? worker : c == cluster_command::dispatcher ? dispatcher : submit;
  }
};

/// The help of `s`'s flag: its `help`, then for a number "LOW to HIGH
/// (default: X)", then the environment variable: "[env TRELLIS_X]".
std::string help_text(const cluster_setting& s);

/// Every setting, in the order of the documentation's table. The config
/// file itself is chosen by `--config FILE` or `TRELLIS_CONFIG`.
const std::vector<cluster_setting>& cluster_settings();

/// Key -> value text of a config file. The format is a TOML subset: one
/// `key = value` per line; a value is a "double-quoted" or 'single-quoted'
/// string, an integer, true or false, or an array of strings (["a", "b"], for `queues`);
/// `#` starts a comment; blank lines are ignored. An array becomes its items
/// joined by commas. Errors (`invalid_config`) name the file and line: a
/// line that is not `key = value`, a section header, a bad value, an
/// unknown key, a key given twice, a file that cannot be read.
expected<std::map<std::string, std::string>> read_config_file(const std::string& path);

/// What the command line and the process environment give.
struct cluster_inputs {
  /// Key -> text of the flags actually given (for a secret: the file path).
  std::map<std::string, std::string> flags;
  /// `--config FILE` if given.
  std::string config_flag;
  /// The environment; tests pass their own.
  std::function<const char*(const char*)> getenv;
};

/// Resolves every setting `command` uses (flag > environment > config file >
/// default), reads the secret and key files, and checks ranges and
/// combinations. Errors are `invalid_config` and name the setting and its
/// source ("--ack-wait-ms", "TRELLIS_ACK_WAIT_MS", "ack_wait_ms in FILE"),
/// never a secret: no broker, no `db` for the dispatcher, a number out of
/// range, a password without a user, user and token together, a TLS
/// certificate without its key, an unreadable or empty secret file, a bad
/// signing key, a bad config file.
expected<cluster_options> resolve_cluster_options(cluster_command command, const cluster_inputs& inputs);

/// The log settings, `log_level` and `log_format` (flag > environment >
/// config file, when `read_config`, > default: info, text). The process
/// name is the caller's. Errors are `invalid_config` and name the source.
expected<log::options> resolve_log_options(const cluster_inputs& inputs, bool read_config);

}  // namespace trellis::detail
