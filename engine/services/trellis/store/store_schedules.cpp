// The store's schedule rows (sqlite_store.hpp, "schedules"). Rare writes:
// each statement is prepared per call rather than at open.

#include "trellis/store/sqlite_store.hpp"

#include "trellis/store/detail/sqlite_access.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace trellis::detail {

namespace {

constexpr std::string_view schedule_columns =
    "name, every_ms, cron, zone, overlap, catchup, anchor_ms, canvas, source, paused, last_tick, buffered, "
    "last_submitted, last_workflow, trigger_at, revision, updated_at";

void bind_optional(binder& b, const std::optional<std::int64_t>& v) {
  if (v) {
    b.integer(*v);
  } else {
    b.null();
  }
}

// A row is read back strictly: a policy or interval another build (or a hand
// edit) wrote that this build does not know is a damaged row, not a guess.
expected<schedule_record> read_schedule(sqlite3_stmt* stmt) {
  schedule_record s;
  s.spec.name = column_text(stmt, 0);
  auto damaged = [&s](const std::string& why) {
    return error{errc::store_corrupt, "schedule " + s.spec.name + ": " + why};
  };
  if (auto every = column_optional_int(stmt, 1)) {
    if (*every < defaults::min_schedule_interval.count() || *every > defaults::max_schedule_interval.count())
      return damaged("interval out of range");
    s.spec.every = std::chrono::milliseconds{*every};
  }
  s.spec.cron = column_text(stmt, 2);
  s.spec.zone = column_text(stmt, 3);
  auto overlap = parse_overlap(column_text(stmt, 4));
  auto catchup = parse_catchup(column_text(stmt, 5));
  if (!overlap || !catchup) return damaged("unknown policy");
  s.spec.overlap = *overlap;
  s.spec.catchup = *catchup;
  s.spec.anchor_ms = sqlite3_column_int64(stmt, 6);
  auto canvas = column_value(stmt, 7, [&s] { return "schedule " + s.spec.name + " canvas"; });
  if (!canvas) return canvas.error();
  s.canvas = std::move(*canvas);
  s.source = column_text(stmt, 8);
  s.paused = sqlite3_column_int64(stmt, 9) != 0;
  s.state.last_tick = column_optional_int(stmt, 10);
  s.state.buffered = column_optional_int(stmt, 11);
  s.state.last_submitted = column_optional_int(stmt, 12);
  s.last_workflow_id = column_optional_text(stmt, 13);
  s.trigger_at = column_optional_int(stmt, 14);
  s.revision = sqlite3_column_int64(stmt, 15);
  s.updated_at = sqlite3_column_int64(stmt, 16);
  // Times from 1970 to the year 9999: the tick arithmetic never comes near overflow.
  constexpr std::int64_t max_time = 253'402'300'799'999;
  auto in_range = [](const std::optional<std::int64_t>& t) { return !t || (*t >= 0 && *t <= max_time); };
  if (!in_range(s.spec.anchor_ms) || !in_range(s.state.last_tick) || !in_range(s.state.buffered) ||
      !in_range(s.state.last_submitted) || !in_range(s.trigger_at))
    return damaged("a time out of range");
  if (s.spec.every && !s.spec.cron.empty()) return damaged("both an interval and a cron expression");
  return s;
}

}  // namespace

expected<void> sqlite_store::insert_schedule(const schedule_record& s) {
  auto what = [&s] { return "add schedule " + s.spec.name; };
  if (impl_->read_only) return impl_->refuse_write(what());
  auto found = find_schedule(s.spec.name);
  if (!found) return found.error();
  if (*found) return error{errc::invalid_config, "schedule " + s.spec.name + " exists (delete it first)"};
  auto stmt = prepare(impl_->db.get(),
                      "INSERT INTO schedules (" + std::string(schedule_columns) +
                          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)",
                      what());
  auto canvas = pack_column(s.canvas).value_or(std::string{});
  auto overlap = std::string(to_string(s.spec.overlap));
  auto catchup = to_string(s.spec.catchup);
  return impl_->write(
      stmt.get(),
      [&](binder& b) {
        b.text(s.spec.name);
        bind_optional(b, s.spec.every ? std::optional<std::int64_t>{s.spec.every->count()} : std::nullopt);
        b.text(s.spec.cron).text(s.spec.zone).text(overlap).text(catchup).integer(s.spec.anchor_ms);
        b.blob(canvas).text(s.source).integer(s.paused ? 1 : 0);
        bind_optional(b, s.state.last_tick);
        bind_optional(b, s.state.buffered);
        bind_optional(b, s.state.last_submitted);
        b.optional_text(s.last_workflow_id);
        bind_optional(b, s.trigger_at);
        b.integer(s.updated_at);
      },
      what);
}

expected<bool> sqlite_store::update_schedule(const schedule_record& s) {
  auto what = [&s] { return "update schedule " + s.spec.name; };
  auto stmt = prepare(impl_->db.get(),
                      "UPDATE schedules SET paused = ?, last_tick = ?, buffered = ?, last_submitted = ?, "
                      "last_workflow = ?, trigger_at = ?, revision = revision + 1, updated_at = ? "
                      "WHERE name = ? AND revision = ?",
                      what());
  auto done = impl_->write(
      stmt.get(),
      [&](binder& b) {
        b.integer(s.paused ? 1 : 0);
        bind_optional(b, s.state.last_tick);
        bind_optional(b, s.state.buffered);
        bind_optional(b, s.state.last_submitted);
        b.optional_text(s.last_workflow_id);
        bind_optional(b, s.trigger_at);
        b.integer(s.updated_at).text(s.spec.name).integer(s.revision);
      },
      what);
  if (!done) return done.error();
  return sqlite3_changes(impl_->db.get()) == 1;
}

expected<bool> sqlite_store::delete_schedule(const std::string& name) {
  auto what = [&name] { return "delete schedule " + name; };
  auto stmt = prepare(impl_->db.get(), "DELETE FROM schedules WHERE name = ?", what());
  auto done = impl_->write(stmt.get(), [&name](binder& b) { b.text(name); }, what);
  if (!done) return done.error();
  return sqlite3_changes(impl_->db.get()) == 1;
}

expected<std::optional<schedule_record>> sqlite_store::find_schedule(const std::string& name) {
  auto what = [&name] { return "find schedule " + name; };
  auto stmt = prepare(impl_->db.get(), select_from(schedule_columns, "FROM schedules WHERE name = ?"), what());
  return impl_->query<std::optional<schedule_record>>(
      stmt.get(), [&name](binder& b) { b.text(name); }, read_schedule, what);
}

expected<std::vector<schedule_record>> sqlite_store::schedules() {
  auto what = [this] { return "list schedules of store '" + impl_->path + "'"; };
  auto stmt = prepare(impl_->db.get(), select_from(schedule_columns, "FROM schedules ORDER BY name"), what());
  return impl_->query<std::vector<schedule_record>>(stmt.get(), no_parameters, read_schedule, what);
}

}  // namespace trellis::detail
