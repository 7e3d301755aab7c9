#include "cli/schedule_commands.hpp"

#include "cli/cli_output.hpp"
#include "cli/table_output.hpp"
#include "cli/workflow_file.hpp"

#include "trellis/clock.hpp"
#include "trellis/schedule_book.hpp"
#include "trellis/store/sqlite_store.hpp"

#include <filesystem>
#include <iostream>
#include <string>

namespace trellis::cli {

struct schedule_commands::state {
  CLI::App* schedule = nullptr;
  CLI::App* add = nullptr;
  CLI::App* list = nullptr;
  CLI::App* pause = nullptr;
  CLI::App* resume = nullptr;
  CLI::App* trigger = nullptr;
  CLI::App* remove = nullptr;
  std::string name;
  std::string file;
  std::string db = defaults::store_path;
  std::string every;
  std::string cron;
  std::string zone = "UTC";
  std::string overlap = "skip";
  std::string catchup = "skip";
  std::string output = "json";
};

namespace {

std::string list_line(const value& doc) { return to_json(doc); }

std::string schedule_table(const value::array& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const auto& row : rows) {
    const auto& m = row.as_map();
    auto at = [&m](const char* key) { return m.count(key) != 0 ? m.at(key) : value{}; };
    std::string when = at("every").is_string() ? "every " + at("every").as_string()
                                               : at("cron").as_string() + " (" + at("zone").as_string() + ")";
    auto time = [&](const char* key) { return at(key).is_integer() ? utc_time(at(key).as_int()) : std::string{"-"}; };
    cells.push_back(std::vector<std::string>{cell(at("name")), when, cell(at("overlap")), cell(at("catchup")),
                                             at("paused").as_bool() ? std::string{"paused"} : std::string{"active"},
                                             time("last_tick"), time("next_tick"), cell(at("last_workflow"))});
  }
  return format_table({"NAME", "WHEN", "OVERLAP", "CATCHUP", "STATE", "LAST TICK", "NEXT TICK", "LAST WORKFLOW"},
                      cells);
}

int fail(const error& e) {
  std::cerr << "error: " << to_string(e) << '\n';
  return exit_code_for(e.code());
}

}  // namespace

schedule_commands::schedule_commands(CLI::App& app) : s_(std::make_unique<state>()) {
  auto& s = *s_;
  s.schedule = app.add_subcommand("schedule", "Periodic schedules of a store: add, list, pause, resume, trigger, delete");
  s.schedule->require_subcommand(1);
  s.add = s.schedule->add_subcommand("add", "Add a schedule that submits a workflow file's canvas at every tick");
  s.add->add_option("NAME", s.name, "Schedule name: 1 to 64 letters, digits, '_' or '-'")->required();
  s.add->add_option("FILE", s.file, "Workflow file (JSON)")->required();
  auto* every = s.add->add_option("--every", s.every, "An interval: 30s, 5m, 2h, 1d (1s to 366d)");
  auto* cron = s.add->add_option("--cron", s.cron, "A 5-field cron expression, e.g. \"*/15 9-17 * * mon-fri\"");
  every->excludes(cron);
  s.add->add_option("--tz", s.zone, "The time zone of --cron (an IANA name, e.g. Europe/Berlin)")
      ->capture_default_str()
      ->needs(cron);
  s.add->add_option("--overlap", s.overlap, "While the previous run runs: skip, buffer_one or allow")
      ->check(CLI::IsMember({"skip", "buffer_one", "allow"}))
      ->capture_default_str();
  s.add->add_option("--catchup", s.catchup, "Ticks missed while nothing ran: skip, one, all or all:N")
      ->capture_default_str();
  s.list = s.schedule->add_subcommand("list", "List the schedules, one JSON object per line");
  s.list->add_option("-o,--output", s.output, "json (one object per line) or table (for a person)")
      ->check(CLI::IsMember({"json", "table"}))
      ->capture_default_str();
  s.pause = s.schedule->add_subcommand("pause", "Pause a schedule: no tick runs until resume");
  s.resume = s.schedule->add_subcommand("resume", "Resume a schedule; ticks that fell while paused are passed over");
  s.trigger = s.schedule->add_subcommand("trigger", "Run a schedule's workflow once now");
  s.remove = s.schedule->add_subcommand("delete", "Delete a schedule (the workflows it started carry on)");
  for (auto* cmd : {s.pause, s.resume, s.trigger, s.remove}) {
    cmd->add_option("NAME", s.name, "Schedule name")->required();
  }
  for (auto* cmd : {s.add, s.list, s.pause, s.resume, s.trigger, s.remove}) {
    cmd->add_option("--db", s.db, "SQLite store (works beside a running serve)")->capture_default_str();
  }
}

schedule_commands::~schedule_commands() = default;

bool schedule_commands::chosen() const { return static_cast<bool>(*s_->schedule); }

int schedule_commands::run(const task_registry& tasks) {
  auto& s = *s_;
  const auto now = detail::now_epoch_ms();
  std::unique_ptr<detail::sqlite_store> store;
  if (!*s.add && !std::filesystem::exists(s.db)) {
    return fail(error{errc::store_failed, "no store at " + s.db});
  }
  store = detail::sqlite_store::open(s.db);  // throws setup_error: the caller's exit code
  auto print_one = [&](const std::string& name) {
    auto rows = detail::schedule_book::list(*store, now);
    if (!rows) return fail(rows.error());
    for (const auto& row : *rows) {
      if (row.as_map().at("name").as_string() == name) std::cout << list_line(row) << '\n';
    }
    return exit_success;
  };
  if (*s.add) {
    auto flow = load_workflow_file(s.file, tasks, canvas_limits{}, !tasks.empty());
    if (!flow) return fail(flow.error());
    schedule_definition def{s.name, std::move(*flow)};
    def.source = s.file;
    if (!s.every.empty()) {
      auto every = parse_interval(s.every);
      if (!every) return fail(every.error());
      def.every = *every;
    } else if (!s.cron.empty()) {
      def.cron = s.cron;
      def.zone = s.zone;
    } else {
      return fail(error{errc::invalid_config, "schedule add: pass --every D or --cron \"EXPR\""});
    }
    auto overlap = parse_overlap(s.overlap);
    if (!overlap) return fail(overlap.error());
    def.overlap = *overlap;
    auto catchup = parse_catchup(s.catchup);
    if (!catchup) return fail(catchup.error());
    def.catchup = *catchup;
    if (auto ok = detail::schedule_book::add(*store, def, now); !ok) return fail(ok.error());
    return print_one(s.name);
  }
  if (*s.list) {
    auto rows = detail::schedule_book::list(*store, now);
    if (!rows) return fail(rows.error());
    if (s.output == "table") {
      std::cout << schedule_table(*rows);
    } else {
      for (const auto& row : *rows) std::cout << list_line(row) << '\n';
    }
    return exit_success;
  }
  expected<void> done;
  if (*s.pause) done = detail::schedule_book::pause(*store, s.name, now);
  if (*s.resume) done = detail::schedule_book::resume(*store, s.name, now);
  if (*s.trigger) done = detail::schedule_book::trigger(*store, s.name, now);
  if (*s.remove) {
    done = detail::schedule_book::remove(*store, s.name);
    if (done) {
      std::cout << "{\"name\":" << json_string(s.name) << ",\"deleted\":true}\n";
      return exit_success;
    }
  }
  if (!done) return fail(done.error());
  return print_one(s.name);
}

}  // namespace trellis::cli
