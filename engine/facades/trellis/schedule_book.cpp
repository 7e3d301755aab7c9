#include "trellis/schedule_book.hpp"

#include "trellis/store/sqlite_store.hpp"
#include "trellis/zoneinfo.hpp"

#include <functional>

namespace trellis::detail::schedule_book {

namespace {

// A compare-and-set that loses to a concurrent writer reads the row again;
// writers are a handful of processes, so a few rounds always suffice.
constexpr int max_rounds = 64;

expected<void> change(sqlite_store& store, const std::string& name, std::int64_t now_ms,
                      const std::function<expected<void>(schedule_record&)>& edit) {
  for (int round = 0; round < max_rounds; ++round) {
    auto found = store.find_schedule(name);
    if (!found) return found.error();
    if (!*found) return error{errc::not_found, "no schedule named " + name};
    schedule_record row = std::move(**found);
    if (auto ok = edit(row); !ok) return ok.error();
    row.updated_at = now_ms;
    auto written = store.update_schedule(row);
    if (!written) return written.error();
    if (*written) return {};
  }
  return error{errc::store_locked, "schedule " + name + ": changed by another writer " + std::to_string(max_rounds) +
                                       " times in a row"};
}

expected<schedule_clock> clock_of(const schedule_spec& spec) {
  if (spec.every) return schedule_clock::make(spec, time_zone::utc());
  auto zone = load_time_zone(spec.zone);
  if (!zone) return zone.error();
  return schedule_clock::make(spec, std::move(*zone));
}

value optional_int(const std::optional<std::int64_t>& v) { return v ? value{*v} : value{}; }

}  // namespace

expected<void> add(sqlite_store& store, const schedule_definition& def, std::int64_t now_ms) {
  schedule_record row;
  row.spec.name = def.name;
  row.spec.every = def.every;
  row.spec.cron = def.cron;
  row.spec.zone = def.every ? "UTC" : def.zone;
  row.spec.overlap = def.overlap;
  row.spec.catchup = def.catchup;
  row.spec.anchor_ms = now_ms;
  if (!def.every && def.cron.empty()) return error{errc::invalid_config, "schedule " + def.name + ": --every or --cron"};
  auto clock = clock_of(row.spec);
  if (!clock) return clock.error();
  row.spec.cron = def.every ? std::string{} : def.cron;
  row.canvas = to_value(def.flow);
  if (def.source.size() > 4096) return error{errc::invalid_config, "schedule source longer than 4096 characters"};
  row.source = def.source;
  row.updated_at = now_ms;
  return store.insert_schedule(row);
}

expected<value::array> list(sqlite_store& store, std::int64_t now_ms) {
  auto rows = store.schedules();
  if (!rows) return rows.error();
  value::array out;
  for (const auto& row : *rows) {
    value::map doc;
    doc.emplace("name", row.spec.name);
    if (row.spec.every) {
      doc.emplace("every", interval_text(*row.spec.every));
    } else {
      doc.emplace("cron", row.spec.cron);
      doc.emplace("zone", row.spec.zone);
    }
    doc.emplace("overlap", std::string(to_string(row.spec.overlap)));
    doc.emplace("catchup", to_string(row.spec.catchup));
    doc.emplace("source", row.source);
    doc.emplace("paused", row.paused);
    doc.emplace("last_tick", optional_int(row.state.last_tick));
    doc.emplace("buffered", optional_int(row.state.buffered));
    doc.emplace("last_workflow", row.last_workflow_id ? value{*row.last_workflow_id} : value{});
    doc.emplace("trigger_pending", row.trigger_at.has_value());
    value next;
    if (auto clock = clock_of(row.spec); clock && !row.paused) {
      next = optional_int(clock->next_after(std::max(now_ms, row.state.last_tick.value_or(row.spec.anchor_ms))));
    }
    doc.emplace("next_tick", std::move(next));
    doc.emplace("revision", row.revision);
    out.emplace_back(std::move(doc));
  }
  return out;
}

expected<void> pause(sqlite_store& store, const std::string& name, std::int64_t now_ms) {
  return change(store, name, now_ms, [](schedule_record& row) -> expected<void> {
    row.paused = true;
    return {};
  });
}

expected<void> resume(sqlite_store& store, const std::string& name, std::int64_t now_ms) {
  return change(store, name, now_ms, [now_ms](schedule_record& row) -> expected<void> {
    if (!row.paused) return {};
    auto clock = clock_of(row.spec);
    if (!clock) return clock.error();
    row.paused = false;
    row.state = resume_state(*clock, row.state, now_ms);
    row.state.buffered.reset();
    return {};
  });
}

expected<void> trigger(sqlite_store& store, const std::string& name, std::int64_t now_ms) {
  return change(store, name, now_ms, [now_ms](schedule_record& row) -> expected<void> {
    // A trigger already waiting stays the one: asked twice before the
    // scheduler looks, one run.
    if (!row.trigger_at) row.trigger_at = now_ms;
    return {};
  });
}

expected<void> remove(sqlite_store& store, const std::string& name) {
  auto gone = store.delete_schedule(name);
  if (!gone) return gone.error();
  if (!*gone) return error{errc::not_found, "no schedule named " + name};
  return {};
}

}  // namespace trellis::detail::schedule_book
