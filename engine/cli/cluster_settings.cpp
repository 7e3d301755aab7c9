#include "cli/cluster_settings.hpp"

#include "cli/duration_text.hpp"

#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <tuple>
#include <utility>

#include "trellis/defaults.hpp"
#include "trellis/http/http_server.hpp"
#include "trellis/signing.hpp"

namespace trellis::detail {

namespace {

/// The defaults of the numeric settings: cluster_options' own.
const cluster_options fallback{};

const std::vector<cluster_setting> settings_table{
    // key, flag, value name, environment, help,
    // secret_in_file, worker, dispatcher, submit
    {"broker", "--broker", "URL[,URL...]", "TRELLIS_BROKER", "NATS server URL, or several comma-separated (required)",
     false, true, true, true},
    {"namespace", "--namespace", "NS", "TRELLIS_NAMESPACE", "Trellis namespace (default: default)", false, true, true,
     true},
    {"queues", "--queues", "a,b", "TRELLIS_QUEUES", "Queues to serve, comma-separated (default: every queue)", false,
     true, false, false},
    {"concurrency", "--concurrency", "N", "TRELLIS_CONCURRENCY", "Handler threads", false, true, false, false,
     whole_number_range{1, static_cast<std::int64_t>(defaults::max_concurrency), 0, "one per hardware thread"}},
    {"pool", "--pool", "thread|process", "TRELLIS_POOL",
     "Where handlers run: thread (the worker's threads) or process (a child process per slot, replaced when a "
     "handler crashes or passes its hard time limit) (default: thread)",
     false, true, false, false},
    {"fetch_batch", "--fetch-batch", "N", "TRELLIS_FETCH_BATCH", "Task messages a handler thread takes per fetch",
     false, true, false, false,
     whole_number_range{1, static_cast<std::int64_t>(defaults::max_fetch_batch),
                        static_cast<std::int64_t>(fallback.fetch_batch)}},
    {"max_abandoned_handlers", "--max-abandoned-handlers", "N", "TRELLIS_MAX_ABANDONED_HANDLERS",
     "Handlers left running past their hard time limit before the worker takes no new task until one returns", false,
     true, false, false,
     whole_number_range{1, static_cast<std::int64_t>(defaults::max_concurrency),
                        static_cast<std::int64_t>(fallback.max_abandoned_handlers)}},
    {"task_pack", "--task-pack", "N", "TRELLIS_TASK_PACK",
     "Most tasks of a large submission packed into one JetStream message (1 never packs)", false, true, true, false,
     whole_number_range{1, 1000, fallback.task_pack}},
    {"ack_wait_ms", "--ack-wait-ms", "MS", "TRELLIS_ACK_WAIT_MS", "JetStream AckWait of this process's consumers in ms",
     false, true, true, false, whole_number_range{100, 3'600'000, fallback.ack_wait.count()}},
    {"broker_wait_ms", "--broker-wait-ms", "MS", "TRELLIS_BROKER_WAIT_MS",
     "How long to keep trying at start while no NATS server answers, in ms (0: once)", false, true, true, false,
     whole_number_range{0, 3'600'000, fallback.broker_wait.count()}},
    {"db", "--db", "PATH", "TRELLIS_DB",
     "SQLite store (required; with several partitions, partition P's is <stem>-pP<ext>)", false, false, true, false},
    {"partitions", "--partitions", "N", "TRELLIS_PARTITIONS",
     "Dispatcher partitions of the namespace, the same in every process of it", false, true, true, true,
     whole_number_range{1, defaults::max_partitions, fallback.partitions}},
    {"max_cached_nodes", "--max-cached-nodes", "N", "TRELLIS_MAX_CACHED_NODES",
     "Workflow graph nodes the dispatcher keeps in memory; idle workflows beyond it are reloaded from the store "
     "when needed",
     false, false, true, false,
     whole_number_range{0, static_cast<std::int64_t>(defaults::max_cached_nodes_limit),
                        static_cast<std::int64_t>(fallback.max_cached_nodes)}},
    // Retention (docs/operations.md#retention): durations, checked by
    // `parse_duration` wherever they come from.
    {"result_expires", "--result-expires", "DURATION", "TRELLIS_RESULT_EXPIRES",
     "Delete a finished workflow, its nodes, attempts and result this long after it finished: 1d, 30m, 3600s, "
     "500ms, or 0 to keep forever (default: 1d)",
     false, false, true, false},
    {"idempotency_key_expires", "--idempotency-key-expires", "DURATION", "TRELLIS_IDEMPOTENCY_KEY_EXPIRES",
     "Delete an idempotency key this long after it was recorded (its step's effect may then happen again), or 0 "
     "to keep forever (default: 7d)",
     false, false, true, false},
    {"dead_letter_expires", "--dead-letter-expires", "DURATION", "TRELLIS_DEAD_LETTER_EXPIRES",
     "Delete a dead letter this long after it was stored, or 0 to keep forever (default: 30d)", false, false, true,
     false},
    {"max_submission_bytes", "--max-submission-bytes", "BYTES", "TRELLIS_MAX_SUBMISSION_BYTES",
     "Largest workflow one submission may carry, encoded", false, true, true, true,
     whole_number_range{1, static_cast<std::int64_t>(defaults::max_configurable_bytes),
                        static_cast<std::int64_t>(fallback.limits.max_submission_bytes)}},
    {"max_argument_bytes", "--max-argument-bytes", "BYTES", "TRELLIS_MAX_ARGUMENT_BYTES",
     "Largest arguments of one task (its input from a previous step included), encoded", false, true, true, true,
     whole_number_range{1, static_cast<std::int64_t>(defaults::max_configurable_bytes),
                        static_cast<std::int64_t>(fallback.limits.max_argument_bytes)}},
    {"max_result_bytes", "--max-result-bytes", "BYTES", "TRELLIS_MAX_RESULT_BYTES",
     "Largest result of one task, encoded", false, true, true, false,
     whole_number_range{1, static_cast<std::int64_t>(defaults::max_configurable_bytes),
                        static_cast<std::int64_t>(fallback.limits.max_result_bytes)}},
    {"owns", "--owns", "P[,P...]", "TRELLIS_OWNS", "Partitions this dispatcher owns, comma-separated (default: all)",
     false, false, true, false},
    {"replicas", "--replicas", "N", "TRELLIS_REPLICAS",
     "JetStream replicas of the streams this process declares: 1, or 3 in a 3-node cluster", false, true, true, false,
     whole_number_range{1, 5, fallback.replicas}},
    {"max_deliver", "--max-deliver", "N", "TRELLIS_MAX_DELIVER",
     "Deliveries of a task without an ack before it is 'worker lost'", false, true, false, false,
     whole_number_range{1, 1000, fallback.max_deliver}},
    {"user", "--user", "NAME", "TRELLIS_NATS_USER", "NATS user name (with a password)", false, true, true, true},
    {"password_file", "--password-file", "FILE", "TRELLIS_NATS_PASSWORD",
     "File holding the NATS password (the variable holds the password itself)", true, true, true, true},
    {"token_file", "--token-file", "FILE", "TRELLIS_NATS_TOKEN",
     "File holding the NATS token (the variable holds the token itself)", true, true, true, true},
    {"creds", "--creds", "FILE", "TRELLIS_NATS_CREDS", "NATS .creds file (JWT and NKey seed)", false, true, true, true},
    {"tls_ca", "--tls-ca", "FILE", "TRELLIS_TLS_CA",
     "PEM file of the CAs that sign the server's certificate (enables TLS)", false, true, true, true},
    {"tls_cert", "--tls-cert", "FILE", "TRELLIS_TLS_CERT",
     "PEM client certificate, for servers that verify clients (with --tls-key)", false, true, true, true},
    {"tls_key", "--tls-key", "FILE", "TRELLIS_TLS_KEY", "PEM private key of --tls-cert", false, true, true, true},
    {"signing_key_file", "--signing-key-file", "FILE", "TRELLIS_SIGNING_KEY_FILE",
     "File holding the HMAC key that signs and checks every message (at least 32 bytes)", false, true, true, true},
    // A switch (no value name): the flag takes no value; the variable and
    // the config key take true/false or 1/0.
    {"insecure", "--insecure", "", "TRELLIS_INSECURE",
     "Run against a broker off loopback with neither NATS authentication nor message signing (refused "
     "otherwise: anyone who can publish there could make workers run any task)",
     false, true, true, false},
    // The HTTP endpoint and task events (docs/operations.md#http).
    {"http", "--http", "HOST:PORT", "TRELLIS_HTTP",
     "Serve /metrics, /healthz, /readyz, the JSON API, task events and the dashboard over HTTP on this address "
     "(loopback unless a token is set; port 0: any free port, logged) (default: off)",
     false, true, true, false},
    {"http_token_file", "--http-token-file", "FILE", "TRELLIS_HTTP_TOKEN",
     "File holding the bearer token the HTTP endpoint's revoke and replay require (the variable holds the token "
     "itself; needed to listen off loopback)",
     true, true, true, false},
    {"no_task_events", "--no-task-events", "", "TRELLIS_NO_TASK_EVENTS",
     "Announce no task events on trellis.<ns>.lifecycle (default: announce them)", false, true, true, false},
    // The process log (docs/operations.md#logs); the embedded commands (run,
    // resume, dlq replay) take the same flags and variables.
    {"log_level", "--log-level", "trace|debug|info|warn|error|off", "TRELLIS_LOG_LEVEL",
     "Least severe log line written on stderr (default: info)", false, true, true, false},
    {"log_format", "--log-format", "text|json", "TRELLIS_LOG_FORMAT",
     "Log lines as text or as one JSON object per line (default: text)", false, true, true, false},
};

std::string trim(const std::string& s) {
  auto begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) {
    return "";
  }
  auto end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

const cluster_setting* find_setting(const std::string& key) {
  for (const auto& s : settings_table) {
    if (key == s.key) {
      return &s;
    }
  }
  return nullptr;
}

/// One quoted string at the start of `text`; sets `rest` to what follows.
std::optional<std::string> quoted(const std::string& text, std::string& rest) {
  if (text.empty() || (text[0] != '"' && text[0] != '\'')) {
    return std::nullopt;
  }
  char quote = text[0];
  std::string out;
  for (std::size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (c == quote) {
      rest = trim(text.substr(i + 1));
      return out;
    }
    if (c == '\\' && quote == '"') {
      if (i + 1 == text.size() || (text[i + 1] != '"' && text[i + 1] != '\\')) {
        return std::nullopt;  // only \" and \\ are supported
      }
      c = text[++i];
    }
    out += c;
  }
  return std::nullopt;  // unterminated
}

/// A value: string, integer or array of strings (joined by commas).
std::optional<std::string> parse_value(const std::string& text) {
  std::string rest;
  if (auto s = quoted(text, rest)) {
    return rest.empty() || rest[0] == '#' ? s : std::nullopt;
  }
  if (!text.empty() && text[0] == '[') {
    std::string out;
    std::string inner = trim(text.substr(1));
    while (!inner.empty() && inner[0] != ']') {
      auto item = quoted(inner, rest);
      if (!item || item->find(',') != std::string::npos) {
        return std::nullopt;
      }
      out += (out.empty() ? "" : ",") + *item;
      inner = rest;
      if (!inner.empty() && inner[0] == ',') {
        inner = trim(inner.substr(1));
      } else if (inner.empty() || inner[0] != ']') {
        return std::nullopt;
      }
    }
    if (inner.empty()) {
      return std::nullopt;  // no closing bracket
    }
    rest = trim(inner.substr(1));
    return rest.empty() || rest[0] == '#' ? std::optional<std::string>{out} : std::nullopt;
  }
  auto end = text.find('#');
  auto word = trim(text.substr(0, end));
  if (!word.empty() && word.find_first_not_of("0123456789") == std::string::npos) {
    return word;
  }
  if (word == "true" || word == "false") {
    return word;
  }
  return std::nullopt;
}

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    return std::nullopt;
  }
  std::string text{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  if (in.bad()) {
    return std::nullopt;
  }
  return text;
}

/// A resolved value and where it came from, for error messages.
struct sourced {
  std::string text;
  std::string source;
  /// The text is a value, not a file path (a secret from the environment).
  bool is_value = false;
};

class resolver {
 public:
  resolver(cluster_command command, const cluster_inputs& in, std::map<std::string, std::string> file,
           std::string file_path)
      : command_(command), in_(in), file_(std::move(file)), file_path_(std::move(file_path)) {}

  /// The value of `key` from the first source that has it.
  std::optional<sourced> get(const std::string& key) const {
    const auto& s = *find_setting(key);
    if (!s.used_by(command_)) {
      return std::nullopt;
    }
    if (auto f = in_.flags.find(key); f != in_.flags.end()) {
      return sourced{f->second, s.flag};
    }
    if (const char* env = in_.getenv ? in_.getenv(s.env) : nullptr; env != nullptr && *env != '\0') {
      return sourced{env, s.env, s.secret_in_file};
    }
    if (auto f = file_.find(key); f != file_.end()) {
      return sourced{f->second, key + " in " + file_path_};
    }
    return std::nullopt;
  }

  /// A numeric setting, checked against its row's range.
  expected<std::int64_t> number(const std::string& key) const {
    const auto& range = *find_setting(key)->range;
    const auto low = range.low;
    const auto high = range.high;
    auto v = get(key);
    if (!v) {
      return range.fallback;
    }
    const auto& t = v->text;
    bool digits = !t.empty() && t.size() <= 10 && t.find_first_not_of("0123456789") == std::string::npos;
    auto n = digits ? std::stoll(t) : -1;
    if (!digits || n < low || n > high) {
      return error{errc::invalid_config, v->source + ": '" + t + "' is not a whole number from " + std::to_string(low) +
                                             " to " + std::to_string(high)};
    }
    return n;
  }

  /// A switch: true/1 or false/0 from any source; absent is false.
  expected<bool> on_off(const std::string& key) const {
    auto v = get(key);
    if (!v) {
      return false;
    }
    if (v->text == "1" || v->text == "true") {
      return true;
    }
    if (v->text == "0" || v->text == "false") {
      return false;
    }
    return error{errc::invalid_config, v->source + ": '" + v->text + "' is not true, false, 1 or 0"};
  }

  /// A secret: read from the file a flag or the config file names, or taken
  /// from the environment as is. Never echoed.
  expected<std::string> secret(const std::string& key) const {
    auto v = get(key);
    if (!v) {
      return std::string{};
    }
    if (v->is_value) {
      return v->text;
    }
    auto text = read_whole_file(v->text);
    if (!text) {
      return error{errc::invalid_config, v->source + ": file '" + v->text + "' cannot be read"};
    }
    while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) {
      text->pop_back();
    }
    if (text->empty()) {
      return error{errc::invalid_config, v->source + ": file '" + v->text + "' is empty"};
    }
    return std::move(*text);
  }

 private:
  cluster_command command_;
  const cluster_inputs& in_;
  std::map<std::string, std::string> file_;
  std::string file_path_;
};

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in{text};
  for (std::string item; std::getline(in, item, ',');) {
    item = trim(item);
    if (!item.empty()) {
      out.push_back(item);
    }
  }
  return out;
}

}  // namespace

const std::vector<cluster_setting>& cluster_settings() { return settings_table; }

std::string help_text(const cluster_setting& s) {
  std::string out = s.help;
  if (s.range) {
    out +=
        ", " + std::to_string(s.range->low) + " to " + std::to_string(s.range->high) + " (default: " +
        (s.range->fallback_text != nullptr ? std::string{s.range->fallback_text} : std::to_string(s.range->fallback)) +
        ")";
  }
  return out + " [env " + s.env + "]";
}

expected<std::map<std::string, std::string>> read_config_file(const std::string& path) {
  auto text = read_whole_file(path);
  if (!text) {
    return error{errc::invalid_config, "config file '" + path + "': cannot be read"};
  }
  std::map<std::string, std::string> out;
  std::istringstream lines{*text};
  int number = 0;
  for (std::string raw; std::getline(lines, raw);) {
    ++number;
    auto where = "config file '" + path + "' line " + std::to_string(number) + ": ";
    auto line = trim(raw);
    if (line.empty() || line[0] == '#') {
      continue;
    }
    if (line[0] == '[') {
      return error{errc::invalid_config, where + "sections are not supported; put every key at the top level"};
    }
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      return error{errc::invalid_config, where + "expected key = value"};
    }
    auto key = trim(line.substr(0, eq));
    if (find_setting(key) == nullptr) {
      return error{errc::invalid_config, where + "unknown key '" + key + "'"};
    }
    auto value = parse_value(trim(line.substr(eq + 1)));
    if (!value) {
      // The value is not shown: it may be a secret typed in the wrong place.
      return error{errc::invalid_config, where + key +
                                             ": the value must be a quoted string, a whole number, true, false or an "
                                             "array of quoted strings"};
    }
    if (!out.emplace(key, *value).second) {
      return error{errc::invalid_config, where + key + " is given twice"};
    }
  }
  return out;
}

namespace {

/// The config file `inputs` name (--config, then TRELLIS_CONFIG), read; an
/// empty map and path when none is named.
expected<std::pair<std::map<std::string, std::string>, std::string>> config_of(const cluster_inputs& inputs) {
  std::string config_path = inputs.config_flag;
  std::string config_source = "--config";
  if (config_path.empty() && inputs.getenv) {
    if (const char* env = inputs.getenv("TRELLIS_CONFIG"); env != nullptr && *env != '\0') {
      config_path = env;
      config_source = "TRELLIS_CONFIG";
    }
  }
  std::map<std::string, std::string> file;
  if (!config_path.empty()) {
    auto read = read_config_file(config_path);
    if (!read) {
      return error{errc::invalid_config, config_source + ": " + read.error().message()};
    }
    file = std::move(*read);
  }
  return std::pair{std::move(file), config_path};
}

}  // namespace

expected<log::options> resolve_log_options(const cluster_inputs& inputs, bool read_config) {
  std::map<std::string, std::string> file;
  std::string file_path;
  if (read_config) {
    auto config = config_of(inputs);
    if (!config) {
      return config.error();
    }
    std::tie(file, file_path) = std::move(*config);
  }
  // Both rows are the worker's (and the dispatcher's).
  resolver r{cluster_command::worker, inputs, std::move(file), file_path};
  log::options out;
  if (auto level = r.get("log_level")) {
    auto parsed = log::parse_level(level->text);
    if (!parsed) {
      return error{errc::invalid_config, level->source + ": '" + level->text.substr(0, 60) +
                                             "' is not a log level: use trace, debug, info, warn, error or off"};
    }
    out.min_level = *parsed;
  }
  if (auto format = r.get("log_format")) {
    auto parsed = log::parse_format(format->text);
    if (!parsed) {
      return error{errc::invalid_config,
                   format->source + ": '" + format->text.substr(0, 60) + "' is not a log format: use text or json"};
    }
    out.style = *parsed;
  }
  return out;
}

expected<cluster_options> resolve_cluster_options(cluster_command command, const cluster_inputs& inputs) {
  auto config = config_of(inputs);
  if (!config) {
    return config.error();
  }
  auto& [file, config_path] = *config;
  resolver r{command, inputs, std::move(file), config_path};

  cluster_options out;
  if (auto broker = r.get("broker")) {
    out.broker_urls = split_list(broker->text);
  }
  if (out.broker_urls.empty()) {
    return error{errc::invalid_config,
                 "no broker: pass --broker URL, set TRELLIS_BROKER or put broker in the "
                 "config file"};
  }
  if (auto ns = r.get("namespace")) {
    out.ns = ns->text;
  }
  if (auto queues = r.get("queues")) {
    out.queues = split_list(queues->text);
  }
  auto concurrency = r.number("concurrency");
  auto fetch_batch = r.number("fetch_batch");
  auto max_abandoned = r.number("max_abandoned_handlers");
  auto ack_wait = r.number("ack_wait_ms");
  auto broker_wait = r.number("broker_wait_ms");
  auto partitions = r.number("partitions");
  auto max_deliver = r.number("max_deliver");
  auto replicas = r.number("replicas");
  auto task_pack = r.number("task_pack");
  auto max_cached_nodes = r.number("max_cached_nodes");
  auto max_submission_bytes = r.number("max_submission_bytes");
  auto max_argument_bytes = r.number("max_argument_bytes");
  auto max_result_bytes = r.number("max_result_bytes");
  for (const auto* n : {&concurrency, &fetch_batch, &max_abandoned, &ack_wait, &broker_wait, &partitions, &max_deliver,
                        &replicas,
                        &task_pack, &max_cached_nodes, &max_submission_bytes, &max_argument_bytes, &max_result_bytes}) {
    if (!*n) {
      return n->error();
    }
  }
  out.concurrency = static_cast<std::size_t>(*concurrency);
  if (auto pool = r.get("pool")) {
    if (pool->text == "thread") {
      out.pool = pool_kind::thread;
    } else if (pool->text == "process") {
      out.pool = pool_kind::process;
    } else {
      return error{errc::invalid_config,
                   pool->source + ": '" + pool->text.substr(0, 60) + "' is not a pool kind: use thread or process"};
    }
  }
  out.fetch_batch = static_cast<std::size_t>(*fetch_batch);
  out.max_abandoned_handlers = static_cast<std::size_t>(*max_abandoned);
  out.ack_wait = std::chrono::milliseconds{*ack_wait};
  out.broker_wait = std::chrono::milliseconds{*broker_wait};
  out.partitions = static_cast<int>(*partitions);
  out.max_deliver = static_cast<int>(*max_deliver);
  out.replicas = static_cast<int>(*replicas);
  out.task_pack = static_cast<int>(*task_pack);
  out.max_cached_nodes = static_cast<std::size_t>(*max_cached_nodes);
  out.limits.max_submission_bytes = static_cast<std::size_t>(*max_submission_bytes);
  out.limits.max_argument_bytes = static_cast<std::size_t>(*max_argument_bytes);
  out.limits.max_result_bytes = static_cast<std::size_t>(*max_result_bytes);
  if (auto owns = r.get("owns")) {
    // Range and duplicates are checked against the partition count when the
    // dispatcher starts (cluster_node), which names the partition.
    for (const auto& item : split_list(owns->text)) {
      if (item.size() > 4 || item.find_first_not_of("0123456789") != std::string::npos) {
        return error{errc::invalid_config, owns->source + ": '" + item + "' is not a partition number"};
      }
      out.owns.push_back(std::stoi(item));
    }
  }
  for (auto [key, target] : {std::pair{"result_expires", &out.result_expires},
                              std::pair{"idempotency_key_expires", &out.idempotency_key_expires},
                              std::pair{"dead_letter_expires", &out.dead_letter_expires}}) {
    if (auto text = r.get(key)) {
      auto d = cli::parse_duration(text->text);
      if (!d) {
        return error{errc::invalid_config, text->source + ": " + d.error().message()};
      }
      *target = *d;
    }
  }
  if (command == cluster_command::dispatcher) {
    auto db = r.get("db");
    if (!db) {
      return error{errc::invalid_config, "no store: pass --db PATH, set TRELLIS_DB or put db in the config file"};
    }
    out.db = db->text;
  }

  auto& security = out.security;
  if (auto user = r.get("user")) {
    security.user = user->text;
  }
  auto password = r.secret("password_file");
  if (!password) {
    return password.error();
  }
  security.password = std::move(*password);
  auto token = r.secret("token_file");
  if (!token) {
    return token.error();
  }
  security.token = std::move(*token);
  if (!security.password.empty() && security.user.empty()) {
    return error{errc::invalid_config, "a password is set (" + r.get("password_file")->source +
                                           ") but no user: set --user, TRELLIS_NATS_USER or user"};
  }
  if (!security.token.empty() && !security.user.empty()) {
    return error{errc::invalid_config, "both a user (" + r.get("user")->source + ") and a token (" +
                                           r.get("token_file")->source + ") are set; NATS takes one of them"};
  }
  auto path_of = [&](const char* key) { return r.get(key) ? r.get(key)->text : std::string{}; };
  security.creds_file = path_of("creds");
  security.tls_ca_file = path_of("tls_ca");
  security.tls_cert_file = path_of("tls_cert");
  security.tls_key_file = path_of("tls_key");
  if (security.tls_cert_file.empty() != security.tls_key_file.empty()) {
    return error{errc::invalid_config,
                 "a TLS client certificate needs its key: set both tls_cert (--tls-cert) and "
                 "tls_key (--tls-key), or neither"};
  }
  if (auto key_file = r.get("signing_key_file")) {
    auto signer = message_signer::from_file(key_file->text);
    if (!signer) {
      return error{errc::invalid_config, key_file->source + ": " + signer.error().message()};
    }
    security.signer = std::make_shared<const message_signer>(std::move(*signer));
  }
  auto insecure = r.on_off("insecure");
  if (!insecure) {
    return insecure.error();
  }
  out.insecure = *insecure;
  if (auto http = r.get("http")) {
    out.http.listen = http->text;
  }
  auto http_token = r.secret("http_token_file");
  if (!http_token) {
    return http_token.error();
  }
  out.http.token = std::move(*http_token);
  if (!out.http.listen.empty()) {
    if (auto address = check_http_options(out.http); !address) {
      return error{errc::invalid_config, r.get("http")->source + ": " + address.error().message()};
    }
  }
  auto quiet = r.on_off("no_task_events");
  if (!quiet) {
    return quiet.error();
  }
  out.task_events = !*quiet;
  return out;
}

}  // namespace trellis::detail
