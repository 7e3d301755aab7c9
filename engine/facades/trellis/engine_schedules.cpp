// The embedded engine's schedule API (engine.hpp, "periodic schedules"):
// each call runs on the scheduler's own store connection and wakes it.

#include "trellis/engine.hpp"

#include "trellis/embedded_scheduler.hpp"
#include "trellis/store/sqlite_store.hpp"

namespace trellis {

namespace {

error no_scheduler() {
  return error{errc::invalid_config, "schedules need a store file and engine_config::run_schedules"};
}

}  // namespace

expected<void> engine::add_schedule(const schedule_definition& def) {
  if (!scheduler_) return no_scheduler();
  return scheduler_->with_store<expected<void>>(
      [&def](detail::sqlite_store& store, std::int64_t now) { return detail::schedule_book::add(store, def, now); });
}

expected<value::array> engine::schedules() {
  if (!scheduler_) return no_scheduler();
  return scheduler_->with_store<expected<value::array>>(
      [](detail::sqlite_store& store, std::int64_t now) { return detail::schedule_book::list(store, now); });
}

expected<void> engine::pause_schedule(const std::string& name) {
  if (!scheduler_) return no_scheduler();
  return scheduler_->with_store<expected<void>>(
      [&name](detail::sqlite_store& store, std::int64_t now) { return detail::schedule_book::pause(store, name, now); });
}

expected<void> engine::resume_schedule(const std::string& name) {
  if (!scheduler_) return no_scheduler();
  return scheduler_->with_store<expected<void>>([&name](detail::sqlite_store& store, std::int64_t now) {
    return detail::schedule_book::resume(store, name, now);
  });
}

expected<void> engine::trigger_schedule(const std::string& name) {
  if (!scheduler_) return no_scheduler();
  return scheduler_->with_store<expected<void>>([&name](detail::sqlite_store& store, std::int64_t now) {
    return detail::schedule_book::trigger(store, name, now);
  });
}

expected<void> engine::delete_schedule(const std::string& name) {
  if (!scheduler_) return no_scheduler();
  return scheduler_->with_store<expected<void>>(
      [&name](detail::sqlite_store& store, std::int64_t) { return detail::schedule_book::remove(store, name); });
}

}  // namespace trellis
