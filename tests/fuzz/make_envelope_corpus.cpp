// Writes the envelope fuzzer's seed corpus: valid envelopes of every type,
// valid but non-canonical encodings, and one file per rejection rule. Rerun it
// when the wire contract changes:
//
//   trellis_make_envelope_corpus tests/fuzz/corpus
//
// Crashers found by the fuzzer are added to the corpus by hand (crash-<what>)
// and are never overwritten by this program.

#include "trellis/envelope.hpp"

#include "support/envelopes.hpp"
#include "support/files.hpp"
#include "support/values.hpp"

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace {

using trellis::binary;
using trellis::value;
using trellis::detail::encode;
using trellis::detail::envelope;
using trellis::detail::outcome_status;
// The envelope builders, field lists and hand-packing helpers.
using namespace trellis::test;

envelope task(bool full) {
  auto e = task_envelope("wf-1:2:1", {"wf-1", 2, 1, "orders.charge"}, "payments");
  e.sent_at = 1'700'000'000'000;
  if (full) {
    e.args = {"A-17",
              0,
              -1,
              127,
              128,
              -33,
              65536,
              INT64_MIN,
              INT64_MAX,
              0.5,
              -0.0,
              1.0,
              nullptr,
              true,
              false,
              binary{{0x00, 0xff}},
              value::array{value::array{}},
              value::map{{"k", value::map{}}}};
    e.kwargs = {{"currency", "EUR"}, {"amount", 1999}};
    e.options = {{"idempotency_key", "wf-1:2"}, {"time_limit_ms", 30000}};
    e.trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  }
  return e;
}

envelope outcome(outcome_status status) {
  auto e = outcome_envelope(
      "wf-1:2:1:outcome", {"wf-1", 2, 1, "orders.charge"}, status, value::map{{"receipt", "R-9"}, {"cents", 1999}},
      status == outcome_status::rejected ? "unknown_task" : "std::runtime_error", "payment gateway busy");
  e.sent_at = 1'700'000'000'100;
  e.duration_us = 1234;
  return e;
}

/// A progress report: counts, message and custom state, or only the state.
envelope progress(bool counts) {
  trellis::task_progress p;
  if (counts) {
    p.done = 7;
    p.total = 20;
    p.message = "rows imported";
  }
  p.state = "IMPORTING";
  auto e = progress_envelope("wf-1:2:1:progress:1", {"wf-1", 2, 1, "orders.import"}, p);
  e.sent_at = 1'700'000'000'300;
  return e;
}

/// A handler's replacement of itself: the outcome with a canvas (a group).
envelope replacement() {
  envelope e;
  e.type = trellis::detail::envelope_type::replace;
  e.id = "wf-1:2:1:outcome";
  e.workflow_id = "wf-1";
  e.node = 2;
  e.attempt = 1;
  e.task = "orders.split";
  value part = value::map{{"task", "orders.part"}, {"args", value::array{1}}};
  e.payload = value::map{{"group", value::array{part, part}}};
  e.sent_at = 1'700'000'000'400;
  e.duration_us = 1234;
  return e;
}

envelope submit() {
  value reserve = value::map{{"task", "orders.reserve"}, {"args", value::array{"A-17"}}};
  value notify = value::map{{"task", "orders.notify"}, {"args", value::array{"email"}}, {"immutable", true}};
  value close = value::map{{"task", "orders.close"}, {"args", value::array{"A-17"}}};
  value chord = value::map{{"chord", value::map{{"header", value::array{notify, notify}}, {"body", close}}}};
  auto e = submit_envelope("submit-1", "order-A-17", value::map{{"chain", value::array{reserve, chord}}}, "order-A-17");
  e.sent_at = 1'700'000'000'200;
  return e;
}

/// A task envelope packed by hand; `extra` adds `extra_count` more entries
/// (and replaces the args when `custom_args`).
template <class Fn>
std::string hand_task(std::uint32_t extra_count, Fn&& extra, bool custom_args = false) {
  field_list fields{{"v", 1},
                    {"type", "task"},
                    {"id", "wf-1:0:1"},
                    {"sent_at", 0},
                    {"wf", "wf-1"},
                    {"node", 0},
                    {"attempt", 1},
                    {"task", "t.x"},
                    {"queue", "default"},
                    {"args", value::array{}},
                    {"kwargs", value::map{}},
                    {"options", value::map{}}};
  return pack_fields(custom_args ? without(fields, "args") : fields, extra_count, std::forward<Fn>(extra));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::pair<std::string, std::string>> files;

  files.emplace_back("valid-task-minimal", encode(task(false)));
  files.emplace_back("valid-task-full", encode(task(true)));
  auto limited = task(false);
  limited.options = {{"idempotency_key", "wf-1:2"}, {"rate_limit", "20/s"}, {"soft_time_limit_ms", 20000}};
  files.emplace_back("valid-task-limits", encode(limited));
  files.emplace_back("valid-outcome-success", encode(outcome(outcome_status::success)));
  files.emplace_back("valid-outcome-failure", encode(outcome(outcome_status::failure)));
  files.emplace_back("valid-outcome-retry", encode(outcome(outcome_status::retry)));
  files.emplace_back("valid-outcome-rejected", encode(outcome(outcome_status::rejected)));
  files.emplace_back("valid-submit-chord", encode(submit()));
  files.emplace_back("valid-progress", encode(progress(true)));
  files.emplace_back("valid-progress-state-only", encode(progress(false)));
  files.emplace_back("valid-replace", encode(replacement()));
  files.emplace_back("invalid-replace-with-status", pack_fields({{"v", 1},
                                                                 {"type", "replace"},
                                                                 {"id", "wf-1:2:1:outcome"},
                                                                 {"sent_at", 0},
                                                                 {"wf", "wf-1"},
                                                                 {"node", 2},
                                                                 {"attempt", 1},
                                                                 {"task", "t.x"},
                                                                 {"canvas", value::map{}},
                                                                 {"duration_us", 1},
                                                                 {"status", "success"}}));
  auto chunk = task(false);
  chunk.options = {{"idempotency_key", "wf-1:2"}, {"chunk", true}};
  files.emplace_back("valid-task-chunk", encode(chunk));
  files.emplace_back("invalid-progress-builtin-state",
                     pack_fields({{"v", 1}, {"type", "progress"}, {"id", "wf-1:2:1:progress:1"}, {"sent_at", 0},
                                  {"wf", "wf-1"}, {"node", 2}, {"attempt", 1}, {"task", "t.x"},
                                  {"state", "SUCCESS"}}));
  // Valid, but not how Trellis writes it: wide ints and a float32. The fuzzer
  // checks that the re-encoding is canonical and stable.
  auto noncanonical_args = [](raw_packer& pk) {
    pack_key(pk, "args");
    pk.pack_array(3);
    pk.pack_fix_uint64(1);
    pk.pack_fix_int32(-2);
    pk.pack_float(0.25f);
  };
  files.emplace_back("valid-task-noncanonical-encodings", hand_task(1, noncanonical_args, true));

  auto v2 = task(false);
  v2.v = 2;
  files.emplace_back("invalid-version-2", encode(v2));
  files.emplace_back("invalid-unknown-field", hand_task(1, [](raw_packer& pk) {
                       pack_key(pk, "colour");
                       pack_key(pk, "blue");
                     }));
  files.emplace_back("invalid-duplicate-field", hand_task(1, [](raw_packer& pk) {
                       pack_key(pk, "id");
                       pack_key(pk, "again");
                     }));
  files.emplace_back("invalid-non-string-key", hand_task(1, [](raw_packer& pk) {
                       pk.pack_int(1);
                       pk.pack_nil();
                     }));
  auto ext_args = [](raw_packer& pk) {
    pack_key(pk, "args");
    pk.pack_array(1);
    pk.pack_ext(1, 7);
    pk.pack_ext_body("x", 1);
  };
  files.emplace_back("invalid-ext-in-args", hand_task(1, ext_args, true));
  auto uint64_args = [](raw_packer& pk) {
    pack_key(pk, "args");
    pk.pack_array(1);
    pk.pack_uint64(UINT64_MAX);
  };
  files.emplace_back("invalid-uint64-in-args", hand_task(1, uint64_args, true));
  auto deep_args = [](raw_packer& pk) {
    pack_key(pk, "args");
    for (int i = 0; i < 80; ++i) {
      pk.pack_array(1);
    }
    pk.pack_nil();
  };
  files.emplace_back("invalid-too-deep", hand_task(1, deep_args, true));
  files.emplace_back("invalid-missing-fields", pack_fields({{"v", 1}, {"type", "task"}, {"id", "x"}, {"sent_at", 0}}));
  auto full = encode(task(true));
  files.emplace_back("invalid-truncated", full.substr(0, full.size() / 2));
  files.emplace_back("invalid-trailing-byte", full + '\x00');
  files.emplace_back("invalid-not-a-map", std::string{"\x93\x01\x02\x03"});
  files.emplace_back("invalid-huge-array-claim", std::string{"\x81\xa4"
                                                             "args"
                                                             "\xdd\xff\xff\xff\xff\x00",
                                                             12});
  files.emplace_back("invalid-huge-map-claim", std::string{"\xdf\xff\xff\xff\xff\xa1v\x01"});

  for (const auto& [name, bytes] : files) {
    if (!write_file(dir + "/" + name, bytes)) {
      std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name.c_str());
      return 1;
    }
  }
  return 0;
}
