// 02: retries and dead letters.
//
// A step that asks to run again (`ctx.retry_later`) succeeds on a later
// attempt. A step whose retries run out fails its workflow: `error_details()`
// says which task failed and why, and its message waits in the dead-letter
// store, where `engine::dead_letters()` finds it and
// `engine::replay_dead_letter(id)` runs it again once the cause is fixed.
//
// It exits non-zero if any of that does not happen.

#include <trellis/trellis.hpp>

#include <atomic>
#include <iostream>
#include <optional>
#include <string>

using namespace std::chrono_literals;

namespace {

int fail(const std::string& why) {
  std::cerr << "02_retries_and_dead_letters: " << why << '\n';
  return 1;
}

/// The dead letter of workflow `workflow_id` among `letters`, if there is one.
std::optional<trellis::value::map> letter_of(const trellis::value::array& letters, const std::string& workflow_id) {
  for (const auto& letter : letters) {
    if (letter.as_map().at("workflow_id").as_string() == workflow_id) {
      return letter.as_map();
    }
  }
  return std::nullopt;
}

}  // namespace

int main() {
  std::atomic<bool> warehouse_online{false};

  trellis::task_registry tasks;
  // A payment gateway that is busy at first: the handler asks to run again
  // (each request is a counted attempt, so the task needs a retry policy).
  auto charge_card =
      tasks.add("charge_card", [](trellis::task_context& ctx, std::string order) -> trellis::task_result<std::string> {
        if (ctx.attempt() < 3) {
          return ctx.retry_later("payment gateway busy", 10ms);
        }
        return "charged " + order + " on attempt " + std::to_string(ctx.attempt());
      });
  charge_card.retry(trellis::retry_policy::fixed(5, 10ms));

  // A warehouse that stays offline: every attempt throws.
  auto reserve_stock = tasks.add("reserve_stock", [&](trellis::task_context&, std::string order) -> std::string {
    if (!warehouse_online) {
      throw std::runtime_error("warehouse offline");
    }
    return "reserved " + order;
  });

  trellis::engine_config cfg;
  cfg.store_path = ":memory:";
  trellis::engine engine{cfg, tasks};

  // 1. Retried until it succeeds.
  auto payment = engine.submit(charge_card.with("A-17"));
  if (!payment) {
    return fail(to_string(payment.error()));
  }
  auto charged = payment->wait_for(10s);
  if (!charged) {
    return fail(to_string(charged.error()));
  }
  std::cout << "charge_card: " << to_json(*charged) << '\n';
  if (charged->as<std::string>() != "charged A-17 on attempt 3") {
    return fail("charge_card should succeed on its third attempt");
  }

  // [dead-letters]
  // 2. Two retries (a policy on this signature only), then the workflow fails.
  auto reservation = engine.submit(reserve_stock.with("A-17").retry(trellis::retry_policy::fixed(2, 10ms)));
  if (!reservation) {
    return fail(to_string(reservation.error()));
  }
  auto outcome = reservation->wait_for(10s);
  if (outcome || outcome.error().code() != trellis::errc::workflow_failed) {
    return fail("reserve_stock should fail its workflow");
  }
  std::cout << "reserve_stock: " << to_string(outcome.error()) << '\n';
  // {"message": "warehouse offline", "node": 0, "task": "reserve_stock", "type": "std::runtime_error"}
  std::cout << "error_details: " << to_json(reservation->error_details()) << '\n';

  // 3. Its last message is in the dead-letter store, with the reason.
  auto letters = engine.dead_letters();
  if (!letters) {
    return fail(to_string(letters.error()));
  }
  auto letter = letter_of(*letters, reservation->id());
  if (!letter) {
    return fail("no dead letter for workflow " + reservation->id());
  }
  std::cout << "dead letter: " << to_json(*letter) << '\n';

  // 4. Once the cause is fixed, replay it: the workflow runs on from there.
  warehouse_online = true;
  auto replay = engine.replay_dead_letter(letter->at("id").as_int());
  if (!replay) {
    return fail(to_string(replay.error()));
  }
  auto reserved = replay->wait_for(10s);
  // [dead-letters]
  if (!reserved) {
    return fail(to_string(reserved.error()));
  }
  std::cout << "replayed: " << to_json(*reserved) << '\n';

  const auto& details = reservation->error_details();
  bool ok = details.is_map() && details.as_map().at("task").as_string() == "reserve_stock" &&
            details.as_map().at("message").as_string() == "warehouse offline" &&
            letter->at("reason").as_string() == "task_failed" && letter->at("attempts").as_int() == 3 &&
            replay->id() == reservation->id() && reserved->as<std::string>() == "reserved A-17";
  return ok ? 0 : fail("the failure, its dead letter or the replay is not what was expected");
}
