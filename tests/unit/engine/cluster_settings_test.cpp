// The cluster commands' configuration: flag > environment > config file >
// default for every setting, a strict config file, and secrets that never
// reach an error message.

#include "cli/cluster_settings.hpp"

#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "support/files.hpp"
#include "support/temp_dir.hpp"

using namespace trellis;
using namespace trellis::detail;
using trellis::test::temp_dir;
using trellis::test::write_file;

namespace {

/// A fake environment for `cluster_inputs::getenv`.
struct fake_env {
  std::map<std::string, std::string> vars;
  std::function<const char*(const char*)> lookup() const {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

}  // namespace

TEST_CASE("Each cluster setting takes the flag over the environment over the config file over the default", "[unit]") {
  temp_dir dir;
  auto config = write_file(dir, "trellis.toml",
                           "# shared by every process\n"
                           "broker = \"nats://file:4222\"\n"
                           "namespace = 'fromfile'\n"
                           "queues = [\"a\", \"b\"]\n"
                           "ack_wait_ms = 700   # comment\n"
                           "fetch_batch = 8\n"
                           "concurrency = 3\n"
                           "db = \"file.db\"\n");
  fake_env env;
  cluster_inputs in;
  in.getenv = env.lookup();
  in.config_flag = config;

  auto from_file = resolve_cluster_options(cluster_command::worker, in);
  REQUIRE(from_file);
  CHECK(from_file->broker_urls == std::vector<std::string>{"nats://file:4222"});
  CHECK(from_file->ns == "fromfile");
  CHECK(from_file->queues == std::vector<std::string>{"a", "b"});
  CHECK(from_file->ack_wait.count() == 700);
  CHECK(from_file->fetch_batch == 8);
  CHECK(from_file->concurrency == 3);

  env.vars = {{"TRELLIS_BROKER", "nats://env:1,nats://env:2"},
              {"TRELLIS_NAMESPACE", "fromenv"},
              {"TRELLIS_ACK_WAIT_MS", "800"},
              {"TRELLIS_QUEUES", ""}};  // empty counts as unset
  auto from_env = resolve_cluster_options(cluster_command::worker, in);
  REQUIRE(from_env);
  CHECK(from_env->broker_urls == std::vector<std::string>{"nats://env:1", "nats://env:2"});
  CHECK(from_env->ns == "fromenv");
  CHECK(from_env->ack_wait.count() == 800);
  CHECK(from_env->queues == std::vector<std::string>{"a", "b"});
  CHECK(from_env->fetch_batch == 8);

  in.flags = {{"broker", "nats://flag:3"}, {"ack_wait_ms", "900"}};
  auto from_flags = resolve_cluster_options(cluster_command::worker, in);
  REQUIRE(from_flags);
  CHECK(from_flags->broker_urls == std::vector<std::string>{"nats://flag:3"});
  CHECK(from_flags->ns == "fromenv");
  CHECK(from_flags->ack_wait.count() == 900);

  // The config file named by TRELLIS_CONFIG when there is no --config.
  cluster_inputs by_env;
  fake_env only_config{{{"TRELLIS_CONFIG", config}}};
  by_env.getenv = only_config.lookup();
  auto dispatcher = resolve_cluster_options(cluster_command::dispatcher, by_env);
  REQUIRE(dispatcher);
  CHECK(dispatcher->db == "file.db");
  CHECK(dispatcher->queues.empty());  // not a dispatcher setting: ignored
  CHECK(dispatcher->task_pack == 32);
  by_env.flags = {{"task_pack", "1"}};
  auto unpacked = resolve_cluster_options(cluster_command::dispatcher, by_env);
  REQUIRE(unpacked);
  CHECK(unpacked->task_pack == 1);
  by_env.flags = {{"task_pack", "0"}};
  CHECK_FALSE(resolve_cluster_options(cluster_command::dispatcher, by_env));

  // Defaults.
  cluster_inputs bare;
  bare.flags = {{"broker", "nats://x:1"}};
  auto defaults = resolve_cluster_options(cluster_command::worker, bare);
  REQUIRE(defaults);
  CHECK(defaults->ns == "default");
  CHECK(defaults->queues.empty());
  CHECK(defaults->ack_wait == trellis::defaults::ack_wait);
  CHECK(defaults->fetch_batch == 64);
  CHECK(defaults->concurrency == 0);
  CHECK(defaults->security.signer == nullptr);
}

TEST_CASE("A bad config file or value is invalid_config naming the file, line or source", "[unit]") {
  temp_dir dir;
  auto expect_error = [&](const std::string& text, const std::string& needle) {
    auto path = write_file(dir, "bad.toml", text);
    cluster_inputs in;
    in.config_flag = path;
    in.flags = {{"broker", "nats://x:1"}};
    auto r = resolve_cluster_options(cluster_command::worker, in);
    INFO(text);
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::invalid_config);
    CHECK_THAT(r.error().message(), Catch::Contains(needle));
    return r.error().message();
  };
  expect_error("broker = \"nats://x\"\nbroker = \"nats://y\"\n", "line 2: broker is given twice");
  expect_error("brokr = \"nats://x\"\n", "line 1: unknown key 'brokr'");
  expect_error("\n[worker]\n", "line 2: sections are not supported");
  expect_error("just words\n", "line 1: expected key = value");
  expect_error("namespace = unquoted\n", "line 1: namespace: the value must be");
  expect_error("namespace = \"unterminated\n", "line 1: namespace");
  expect_error("queues = [\"a\", \"b\"\n", "line 1: queues");
  expect_error("ack_wait_ms = 5\n", "ack_wait_ms in " + dir.file("bad.toml") + ": '5' is not a whole number from 100");
  expect_error("fetch_batch = 0\n", "fetch_batch in");
  // A value in the wrong place is never echoed: it may be a secret.
  auto shown = expect_error("user = hunter2-secret\n", "line 1: user");
  CHECK(shown.find("hunter2-secret") == std::string::npos);

  cluster_inputs missing;
  missing.config_flag = dir.file("absent.toml");
  auto r = resolve_cluster_options(cluster_command::worker, missing);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(),
             Catch::Contains("--config: config file '" + dir.file("absent.toml") + "': cannot be read"));

  cluster_inputs no_broker;
  r = resolve_cluster_options(cluster_command::submit, no_broker);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("no broker"));

  cluster_inputs no_db;
  no_db.flags = {{"broker", "nats://x:1"}};
  r = resolve_cluster_options(cluster_command::dispatcher, no_db);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("no store"));

  cluster_inputs bad_flag;
  bad_flag.flags = {{"broker", "nats://x:1"}, {"concurrency", "many"}};
  r = resolve_cluster_options(cluster_command::worker, bad_flag);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("--concurrency: 'many' is not a whole number from 1 to 1024"));
}

TEST_CASE("Secrets come from files or the environment, are checked in combination and never shown", "[unit]") {
  temp_dir dir;
  auto password_file = write_file(dir, "password", "pa55-from-file\n");
  auto token_file = write_file(dir, "token", "tok-from-file\n");
  auto key_file = write_file(dir, "key", std::string(40, 'k') + "\n");
  fake_env env;
  cluster_inputs in;
  in.getenv = env.lookup();
  in.flags = {
      {"broker", "nats://x:1"}, {"user", "alice"}, {"password_file", password_file}, {"signing_key_file", key_file}};
  auto r = resolve_cluster_options(cluster_command::submit, in);
  REQUIRE(r);
  CHECK(r->security.user == "alice");
  CHECK(r->security.password == "pa55-from-file");
  REQUIRE(r->security.signer != nullptr);

  // The variable holds the password itself; the flag still wins over it.
  env.vars = {{"TRELLIS_NATS_PASSWORD", "pa55-from-env"}};
  CHECK(resolve_cluster_options(cluster_command::submit, in)->security.password == "pa55-from-file");
  in.flags.erase("password_file");
  CHECK(resolve_cluster_options(cluster_command::submit, in)->security.password == "pa55-from-env");

  // A password without a user, a user with a token: refused, without values.
  in.flags.erase("user");
  r = resolve_cluster_options(cluster_command::submit, in);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("a password is set (TRELLIS_NATS_PASSWORD) but no user"));
  CHECK(r.error().message().find("pa55") == std::string::npos);
  env.vars.clear();
  in.flags["user"] = "alice";
  in.flags["token_file"] = token_file;
  r = resolve_cluster_options(cluster_command::submit, in);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("both a user (--user) and a token (--token-file)"));
  CHECK(r.error().message().find("tok-from-file") == std::string::npos);
  in.flags.erase("user");
  CHECK(resolve_cluster_options(cluster_command::submit, in)->security.token == "tok-from-file");

  in.flags["token_file"] = dir.file("absent");
  r = resolve_cluster_options(cluster_command::submit, in);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("--token-file: file '" + dir.file("absent") + "' cannot be read"));
  in.flags.erase("token_file");

  in.flags["tls_cert"] = dir.file("cert.pem");
  r = resolve_cluster_options(cluster_command::submit, in);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("needs its key"));
  in.flags.erase("tls_cert");

  in.flags["signing_key_file"] = write_file(dir, "short-key", "short-secret\n");
  r = resolve_cluster_options(cluster_command::submit, in);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("--signing-key-file: signing key file"));
  CHECK(r.error().message().find("short-secret") == std::string::npos);
}

TEST_CASE("The insecure switch is for workers and dispatchers, from the flag, the environment or the file", "[unit]") {
  temp_dir dir;
  fake_env env;
  cluster_inputs in;
  in.getenv = env.lookup();
  in.flags = {{"broker", "nats://10.0.0.5:4222"}, {"db", "d.db"}};
  CHECK_FALSE(resolve_cluster_options(cluster_command::worker, in)->insecure);
  in.flags["insecure"] = "true";  // what the CLI passes for the bare flag
  CHECK(resolve_cluster_options(cluster_command::worker, in)->insecure);
  CHECK(resolve_cluster_options(cluster_command::dispatcher, in)->insecure);
  // Clients are never refused, so the setting is not theirs.
  CHECK_FALSE(resolve_cluster_options(cluster_command::submit, in)->insecure);
  in.flags.erase("insecure");

  env.vars = {{"TRELLIS_INSECURE", "1"}};
  CHECK(resolve_cluster_options(cluster_command::worker, in)->insecure);
  env.vars = {{"TRELLIS_INSECURE", "false"}};
  CHECK_FALSE(resolve_cluster_options(cluster_command::worker, in)->insecure);
  env.vars = {{"TRELLIS_INSECURE", "yes please"}};
  auto r = resolve_cluster_options(cluster_command::worker, in);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("TRELLIS_INSECURE: 'yes please' is not true, false, 1 or 0"));
  env.vars.clear();

  in.config_flag = write_file(dir, "c.toml", "insecure = true # a trusted network\n");
  CHECK(resolve_cluster_options(cluster_command::dispatcher, in)->insecure);
  in.config_flag = write_file(dir, "d.toml", "insecure = maybe\n");
  CHECK_FALSE(resolve_cluster_options(cluster_command::dispatcher, in));
}

TEST_CASE(
    "Every numeric setting takes the ends of its table range from a flag and refuses one past either end, "
    "and its help states the range and the default",
    "[unit]") {
  int checked = 0;
  for (const auto& s : cluster_settings()) {
    if (!s.range) {
      continue;
    }
    INFO(s.key);
    auto command = s.worker ? cluster_command::worker : cluster_command::dispatcher;
    auto with = [&](std::int64_t n) {
      cluster_inputs in;
      in.flags = {{"broker", "nats://127.0.0.1:4222"}, {"db", "x.db"}, {s.key, std::to_string(n)}};
      return resolve_cluster_options(command, in);
    };
    CHECK(with(s.range->low));
    CHECK(with(s.range->high));
    CHECK_FALSE(with(s.range->high + 1));
    if (s.range->low > 0) {
      CHECK_FALSE(with(s.range->low - 1));
    }
    auto help = help_text(s);
    CHECK_THAT(help,
               Catch::Contains(std::to_string(s.range->low) + " to " + std::to_string(s.range->high) + " (default: "));
    ++checked;
  }
  CHECK(checked == 13);
}

TEST_CASE("The worker's pool is thread by default, process from the flag, the environment or the file, and "
          "nothing else",
          "[unit][process_pool]") {
  temp_dir dir;
  fake_env env;
  cluster_inputs in;
  in.getenv = env.lookup();
  in.flags = {{"broker", "nats://127.0.0.1:4222"}};
  CHECK(resolve_cluster_options(cluster_command::worker, in)->pool == pool_kind::thread);

  in.config_flag = write_file(dir, "w.toml", "pool = \"process\"\n");
  CHECK(resolve_cluster_options(cluster_command::worker, in)->pool == pool_kind::process);
  env.vars = {{"TRELLIS_POOL", "thread"}};
  CHECK(resolve_cluster_options(cluster_command::worker, in)->pool == pool_kind::thread);
  in.flags["pool"] = "process";
  CHECK(resolve_cluster_options(cluster_command::worker, in)->pool == pool_kind::process);

  in.flags["pool"] = "prefork";
  auto r = resolve_cluster_options(cluster_command::worker, in);
  REQUIRE_FALSE(r);
  CHECK(r.error().code() == errc::invalid_config);
  CHECK_THAT(r.error().message(), Catch::Contains("--pool: 'prefork' is not a pool kind: use thread or process"));
  in.flags.erase("pool");
  env.vars = {{"TRELLIS_POOL", "Process"}};
  r = resolve_cluster_options(cluster_command::worker, in);
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message(), Catch::Contains("TRELLIS_POOL: 'Process'"));

  // Not a setting of the other commands: one config file serves them all.
  env.vars.clear();
  in.flags["db"] = "d.db";
  CHECK(resolve_cluster_options(cluster_command::dispatcher, in)->pool == pool_kind::thread);
}

TEST_CASE("The HTTP endpoint's address, token and the task-events switch resolve like every setting", "[unit]") {
  temp_dir dir;
  fake_env env;
  cluster_inputs in;
  in.getenv = env.lookup();
  in.flags = {{"broker", "nats://127.0.0.1:4222"}, {"db", "d.db"}};
  auto plain = resolve_cluster_options(cluster_command::worker, in);
  REQUIRE(plain);
  CHECK(plain->http.listen.empty());
  CHECK(plain->task_events);

  in.flags["http"] = "127.0.0.1:9100";
  CHECK(resolve_cluster_options(cluster_command::worker, in)->http.listen == "127.0.0.1:9100");
  // Off loopback without a token: refused, naming the source.
  in.flags["http"] = "0.0.0.0:9100";
  auto open = resolve_cluster_options(cluster_command::dispatcher, in);
  REQUIRE_FALSE(open);
  CHECK(open.error().code() == errc::invalid_config);
  CHECK_THAT(open.error().message(), Catch::Contains("--http") && Catch::Contains("token"));
  // The token from a file (its first line), or the variable holding it; never shown.
  in.flags["http_token_file"] = write_file(dir, "token", "s3cret-token\n");
  auto with_file = resolve_cluster_options(cluster_command::dispatcher, in);
  REQUIRE(with_file);
  CHECK(with_file->http.token == "s3cret-token");
  in.flags.erase("http_token_file");
  env.vars = {{"TRELLIS_HTTP_TOKEN", "env-token"}};
  CHECK(resolve_cluster_options(cluster_command::worker, in)->http.token == "env-token");
  in.flags["http"] = "127.0.0.1:99999";
  auto bad_port = resolve_cluster_options(cluster_command::worker, in);
  REQUIRE_FALSE(bad_port);
  CHECK_THAT(bad_port.error().message(), Catch::Contains("65535") && !Catch::Contains("env-token"));

  in.flags = {{"broker", "nats://127.0.0.1:4222"}, {"db", "d.db"}, {"no_task_events", "true"}};
  CHECK_FALSE(resolve_cluster_options(cluster_command::worker, in)->task_events);
  in.flags.erase("no_task_events");
  env.vars = {{"TRELLIS_NO_TASK_EVENTS", "1"}};
  CHECK_FALSE(resolve_cluster_options(cluster_command::dispatcher, in)->task_events);
}
