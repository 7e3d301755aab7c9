// Torture, wire inputs: for a bounded time, seeded random and mutated
// messages with forged headers go onto every subject a running cluster
// reads (task, event, submission and control subjects, the stored
// revocation notices and the MAX_DELIVERIES advisories the dispatcher reads
// back as lost tasks), straight through a bare NATS client that checks
// nothing. Afterwards the dispatcher and the worker still run (never exited,
// so never in a crash loop), a real workflow still succeeds, and the
// poison ended in the dead-letter store. Prints its figures and seed.

#include "support/chain_check.hpp"
#include "support/cluster_processes.hpp"
#include "support/envelopes.hpp"
#include "support/files.hpp"
#include "support/nats_server.hpp"
#include "support/raw_nats.hpp"
#include "support/store_reader.hpp"
#include "support/wait_until.hpp"
#include "torture/torture_settings.hpp"

#include "trellis/canvas.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/envelope.hpp"
#include "trellis/submission.hpp"
#include "trellis/transport/pack_codec.hpp"
#include "trellis/transport/subjects.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

/// A control request of `op` about workflow `id` or dead letter `letter`.
trellis::detail::control_request control_of(trellis::detail::control_op op, std::string id, std::int64_t letter) {
  trellis::detail::control_request r;
  r.op = op;
  r.workflow_id = std::move(id);
  r.letter = letter;
  return r;
}

using trellis::test::cluster_processes;
using trellis::test::raw_nats;

using rng_t = std::mt19937_64;

std::size_t below(rng_t& rng, std::size_t n) { return std::uniform_int_distribution<std::size_t>{0, n - 1}(rng); }

std::string random_bytes(rng_t& rng, std::size_t n) {
  std::string out(n, '\0');
  for (auto& c : out) {
    c = static_cast<char>(below(rng, 256));
  }
  return out;
}

/// Printable ASCII: what a NATS header value may hold.
std::string random_text(rng_t& rng, std::size_t n) {
  std::string out(n, ' ');
  for (auto& c : out) {
    c = static_cast<char>(33 + below(rng, 94));
  }
  return out;
}

/// `n` lowercase hex digits.
std::string random_hex(rng_t& rng, std::size_t n) {
  std::string out(n, '0');
  for (auto& c : out) {
    c = "0123456789abcdef"[below(rng, 16)];
  }
  return out;
}

/// A number-like header value: the forms a parser gets wrong.
std::string hostile_number(rng_t& rng) {
  static const std::array<const char*, 14> forms{
      "-1", "0",  "1",    "2", "4294967296", "99999999999999999999999", "18446744073709551616", "1e9", " 3",
      "3 ", "+5", "0x10", "",  "abc"};
  if (below(rng, 3) == 0) {
    return std::to_string(below(rng, 100000));
  }
  return forms[below(rng, forms.size())];
}

/// The id of the pieces the test stores before it starts (`fuzz_pieces`
/// of `fuzz_piece_bytes` each, random bytes): stubs that name them make the
/// receivers read real pieces whose whole does not decode.
constexpr const char* fuzz_upload_id = "f00d";
constexpr std::size_t fuzz_pieces = 3;
constexpr std::size_t fuzz_piece_bytes = 100;

/// A `Trellis-Upload` value: the real pieces named rightly or wrongly, a
/// well-formed one naming none, or hostile fields.
std::string hostile_upload(rng_t& rng) {
  switch (below(rng, 4)) {
    case 0:
      return std::string{fuzz_upload_id} + " " + std::to_string(fuzz_pieces * fuzz_piece_bytes - below(rng, 2)) + " " +
             std::to_string(fuzz_pieces - below(rng, 2));
    case 1:
      return random_hex(rng, 32) + " " + std::to_string(1 + below(rng, 1 << 20)) + " " +
             std::to_string(1 + below(rng, 4));
    case 2:
      return random_hex(rng, 1 + below(rng, 80)) + " " + hostile_number(rng) + " " + hostile_number(rng);
    default:
      return random_text(rng, below(rng, 120));
  }
}

/// One valid body per wire input, for the mutations to start from.
struct bases {
  std::vector<std::string> tasks, events, submissions, controls;
};

bases valid_bodies() {
  using namespace trellis;
  using namespace trellis::detail;
  bases b;
  auto task = test::task_envelope("fz:0:1", {"fz", 0, 1, "add"}, "default");
  task.args = {value(std::int64_t{1}), value(std::int64_t{2})};
  task.options["idempotency_key"] = "fz/0";
  b.tasks.push_back(encode(task));
  auto bad_args = task;
  bad_args.args = {value("x"), value(value::array{})};
  b.tasks.push_back(encode(bad_args));
  // A rate limit makes the worker reserve a slot first (its key-value
  // bucket); the mutations give it malformed rates.
  auto limited = task;
  limited.options["rate_limit"] = "1000000/s";
  b.tasks.push_back(encode(limited));
  b.events.push_back(encode(test::outcome_envelope("fz:0:1:out", {"fz", 0, 1, "add"}, outcome_status::success,
                                                   value(std::int64_t{3}), "", "")));
  b.events.push_back(encode(test::outcome_envelope("fz:1:1:out", {"fz", 1, 1, "add"}, outcome_status::failure, value{},
                                                   "boom", "failed on purpose")));
  // Progress reports: one of a running attempt's, one of no attempt, and
  // one only a custom state (a mutation may make any of them stale or bad).
  task_progress report;
  report.done = 1;
  report.total = 2;
  report.message = "half";
  report.state = "FUZZING";
  b.events.push_back(encode(test::progress_envelope("fz:0:1:progress:1", {"fz", 0, 1, "add"}, report)));
  b.events.push_back(encode(test::progress_envelope("fz:9:3:progress:1", {"fz", 9, 3, "add"}, report)));
  task_progress state_only;
  state_only.state = "WAITING";
  b.events.push_back(encode(test::progress_envelope("fz:1:1:progress:2", {"fz", 1, 1, "add"}, state_only)));
  auto flow = chain(signature{"add", {value(std::int64_t{1}), value(std::int64_t{2})}},
                    signature{"add", {value(std::int64_t{3})}}.rate_limit("1000/s"));
  b.submissions.push_back(encode(submission_envelope("fz-submitted", flow)));
  b.controls.push_back(encode(control_of(control_op::inspect, "", 0)));
  b.controls.push_back(encode(control_of(control_op::status, "fz", 0)));
  b.controls.push_back(encode(control_of(control_op::dlq_replay, "", 1)));
  b.controls.push_back(encode(control_of(control_op::revoke, "fz", 0)));
  control_request one_node;
  one_node.op = control_op::revoke;
  one_node.workflow_id = "fz";
  one_node.node = 1;
  one_node.terminate = true;
  b.controls.push_back(encode(one_node));
  control_request notice;
  notice.op = control_op::revoked;
  notice.workflow_id = "fz";
  notice.nodes = {0, 1};
  notice.terminate = true;
  b.controls.push_back(encode(notice));
  return b;
}

/// `base` changed by one of the ways bytes go wrong on a wire.
std::string mutate(rng_t& rng, const std::vector<std::string>& pool) {
  auto out = pool[below(rng, pool.size())];
  switch (below(rng, 7)) {
    case 0:  // a few flipped bits
      for (std::size_t k = 0, n = 1 + below(rng, 8); k < n && !out.empty(); ++k) {
        out[below(rng, out.size())] ^= static_cast<char>(1u << below(rng, 8));
      }
      break;
    case 1:  // cut short
      out.resize(out.empty() ? 0 : below(rng, out.size()));
      break;
    case 2:  // trailing garbage
      out += random_bytes(rng, 1 + below(rng, 64));
      break;
    case 3:  // random bytes only
      out = random_bytes(rng, below(rng, 512));
      break;
    case 4: {  // two bodies spliced
      const auto& other = pool[below(rng, pool.size())];
      out = out.substr(0, below(rng, out.size() + 1)) + other.substr(below(rng, other.size() + 1));
      break;
    }
    case 5:  // bytes set to the extremes msgpack lengths are made of
      for (std::size_t k = 0, n = 1 + below(rng, 4); k < n && !out.empty(); ++k) {
        out[below(rng, out.size())] = below(rng, 2) == 0 ? '\xff' : '\xdb';
      }
      break;
    default:  // unchanged: valid bodies with hostile headers
      break;
  }
  return out;
}

/// A pack: 1 to 5 bodies in frames, the count header right or wrong.
std::pair<std::string, std::string> pack_of(rng_t& rng, const std::vector<std::string>& pool) {
  std::vector<std::string> frames;
  for (std::size_t i = 0, n = 1 + below(rng, 5); i < n; ++i) {
    frames.push_back(mutate(rng, pool));
  }
  auto body =
      trellis::detail::pack_frames(0, frames.size(), [&](std::size_t i) -> const std::string& { return frames[i]; });
  auto count = below(rng, 2) == 0 ? std::to_string(frames.size()) : hostile_number(rng);
  return {body, count};
}

/// Forged headers: usually a few, sometimes dozens (the same name repeated,
/// as NATS allows), and sometimes values of kilobytes.
raw_nats::headers hostile_headers(rng_t& rng) {
  static const std::array<const char*, 7> names{"Trellis-Task-Pack", "Trellis-Event-Pack", "Nats-Msg-Id",
                                                "Trellis-Signature", "Trellis-Trace",      "Nats-Expected-Stream",
                                                "Trellis-Upload"};
  raw_nats::headers out;
  const bool many = below(rng, 16) == 0;
  const bool huge = below(rng, 16) == 0;
  for (std::size_t i = 0, n = many ? 10 + below(rng, 70) : below(rng, 4); i < n; ++i) {
    std::string name =
        below(rng, 4) == 0 ? "X-" + random_text(rng, 1 + below(rng, 12)) : names[below(rng, names.size())];
    if (name.find(':') != std::string::npos) {
      name = "X-Fuzz";
    }
    std::string v;
    if (name.find("Pack") != std::string::npos) {
      v = hostile_number(rng);
    } else if (name == "Trellis-Upload") {
      v = hostile_upload(rng);
    } else if (name == "Trellis-Signature") {
      v = below(rng, 2) == 0 ? "sha256=" + random_text(rng, 64) : random_text(rng, below(rng, 80));
    } else {
      v = random_text(rng, 1 + below(rng, 200));
    }
    if (huge) {
      v += random_text(rng, 1024 + below(rng, 15 * 1024));
    }
    out.emplace_back(name, v);
  }
  return out;
}

/// A MAX_DELIVERIES advisory as JetStream writes it, naming the task at
/// `seq` of `stream` exhausted.
std::string advisory_body(const std::string& stream, std::size_t seq) {
  return R"({"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"fz","timestamp":"2026-01-01T00:00:00Z",)"
         R"("stream":")" +
         stream + R"(","consumer":"all-queues","stream_seq":)" + std::to_string(seq) + R"(,"deliveries":5})";
}

}  // namespace

TEST_CASE(
    "Torture: random and mutated messages with forged headers on every wire input leave the cluster running, "
    "working and dead-lettering the poison",
    "[torture][fuzz]") {
  const auto seed = trellis::test::torture_seed();
  const auto duration = trellis::test::torture_duration();
  rng_t rng{seed};
  INFO("TRELLIS_TORTURE_SEED=" << seed);

  trellis::test::nats_server server;
  auto procs = cluster_processes::on_broker(server.url(), "fuzz", {}, {"--ack-wait-ms", "2000"});
  auto& dispatcher = procs.start_dispatcher(procs.db());
  procs.wait_running(dispatcher);
  auto& worker = procs.start_worker({"--concurrency", "2"});
  procs.wait_running(worker);

  auto names = trellis::detail::subject_space::make(procs.ns());
  REQUIRE(names);
  // Task messages go where the worker reads them: a task it registers.
  auto task_subject = names->task("default", "add");
  auto event_subject = names->event(0);
  auto submit_subject = names->submit(0);
  REQUIRE(task_subject);
  REQUIRE(event_subject);
  REQUIRE(submit_subject);
  std::vector<std::string> control_subjects;
  for (const char* verb : {"inspect", "metrics", "status", "revoke", "dlq"}) {
    control_subjects.push_back(*names->control(verb));
    if (auto p = names->control(verb, 0)) {
      control_subjects.push_back(*p);
    }
  }
  auto revoked_subject = names->control("revoked");
  REQUIRE(revoked_subject);
  // Pieces for the stubs that name them (hostile_upload), in the stream the
  // dispatcher declared.
  for (std::size_t n = 0; n < fuzz_pieces; ++n) {
    auto piece = names->upload_piece(fuzz_upload_id, n);
    REQUIRE(piece);
    REQUIRE(raw_nats{server.url()}.publish_stored(*piece, random_text(rng, fuzz_piece_bytes)) == NATS_OK);
  }
  // The advisory subject ends in a wildcard for the consumer; the lost
  // stream captures the advisory of any consumer of the task stream.
  auto advisory_subject = names->task_max_deliveries_advisory();
  advisory_subject.pop_back();
  advisory_subject += names->all_queues_task_consumer("add");

  const auto b = valid_bodies();
  raw_nats raw{server.url()};
  // Half the submissions and control requests ask for an answer, so the
  // dispatcher's and the worker's answering of poison runs too.
  const std::string inbox = "_INBOX.fuzz";
  raw.listen(inbox + ".>");
  std::size_t asked = 0;
  auto reply_to = [&]() -> std::string { return below(rng, 2) == 0 ? "" : inbox + "." + std::to_string(++asked); };
  std::map<std::string, std::size_t> sent;     // by wire input
  std::map<std::string, std::size_t> refused;  // by the broker: a forged stream header, a duplicate id
  const char* kind = "";
  auto deadline = std::chrono::steady_clock::now() + duration;
  while (std::chrono::steady_clock::now() < deadline) {
    auto hdrs = hostile_headers(rng);
    natsStatus s = NATS_OK;
    switch (below(rng, 7)) {
      case 0:
      case 1: {  // task messages, single or packed, through JetStream
        if (below(rng, 3) == 0) {
          auto [body, count] = pack_of(rng, b.tasks);
          hdrs.emplace_back("Trellis-Task-Pack", count);
          s = raw.publish_stored(*task_subject, body, hdrs);
        } else {
          s = raw.publish_stored(*task_subject, mutate(rng, b.tasks), hdrs);
        }
        kind = "task";
        break;
      }
      case 2: {  // outcome events, single or packed
        if (below(rng, 3) == 0) {
          auto [body, count] = pack_of(rng, b.events);
          hdrs.emplace_back("Trellis-Event-Pack", count);
          s = raw.publish_stored(*event_subject, body, hdrs);
        } else {
          s = raw.publish_stored(*event_subject, mutate(rng, b.events), hdrs);
        }
        kind = "event";
        break;
      }
      case 3:
        s = raw.publish_core(*submit_subject, mutate(rng, b.submissions), hdrs, reply_to());
        kind = "submission";
        break;
      case 4:
        s = raw.publish_core(control_subjects[below(rng, control_subjects.size())], mutate(rng, b.controls), hdrs,
                             reply_to());
        kind = "control";
        break;
      case 5:
        s = raw.publish_stored(*revoked_subject, mutate(rng, b.controls), hdrs);
        kind = "revocation";
        break;
      default: {  // naming a stored task (mostly fuzzed ones) or none as exhausted
        const std::vector<std::string> one{advisory_body(names->task_stream(), 1 + below(rng, sent["task"] + 16))};
        s = raw.publish_stored(advisory_subject, mutate(rng, one), hdrs);
        kind = "advisory";
        break;
      }
    }
    ++sent[kind];
    refused[kind] += s == NATS_OK ? 0 : 1;
  }

  // Everything stored has been taken and settled, unless a process died.
  auto event_consumer = names->event_consumer(0);
  auto lost_consumer = names->lost_consumer(0);
  REQUIRE(event_consumer);
  REQUIRE(lost_consumer);
  auto settled = [&] {
    // Every consumer the worker declared (one per registered task) is
    // drained; tasks of fuzzed names no worker registered wait in the
    // stream by design (decision 0022), owed by no consumer.
    auto tasks = server.stream_backlog(names->task_stream());
    return tasks && tasks->first == 0 && tasks->second > 0 &&
           server.consumer_backlog(names->event_stream(), *event_consumer) == std::uint64_t{0} &&
           server.consumer_backlog(names->lost_stream(), *lost_consumer) == std::uint64_t{0};
  };
  auto exited = [&] { return dispatcher.try_wait() || worker.try_wait(); };
  const bool drained = trellis::test::wait_until([&] { return exited() || settled(); }, trellis::test::max_test_wait,
                                                 "the worker and the dispatcher to settle every fuzzed message");
  // Requests were answered (a refusal is an answer too), not dropped.
  const bool answered = trellis::test::wait_until([&] { return exited() || raw.heard() > 0; },
                                                  trellis::test::max_test_wait, "an answer to a fuzzed request");
  // Never exited: no crash, and so no crash loop (nothing restarts them).
  const int crashes = (dispatcher.try_wait() ? 1 : 0) + (worker.try_wait() ? 1 : 0);
  auto letters = trellis::test::try_count(procs.db(), "SELECT count(*) FROM dead_letters").value_or(0);

  std::size_t total = 0;
  std::cout << "torture fuzz: seed " << seed << ", " << duration.count() << " s:";
  for (const auto& [input, n] : sent) {
    std::cout << ' ' << input << ' ' << n << " (refused by the broker " << refused[input] << "),";
    total += n;
  }
  std::cout << " messages " << total << ", requests " << asked << ", answers " << raw.heard() << ", dead letters "
            << letters << ", crashes " << crashes << std::endl;

  INFO(procs.logs());
  REQUIRE(crashes == 0);
  REQUIRE(drained);
  CHECK(answered);
  CHECK(letters > 0);
  // And still working.
  trellis::test::check_chain_runs(procs);
  CHECK(procs.stop_all());
}
