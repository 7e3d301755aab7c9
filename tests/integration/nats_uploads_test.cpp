// Messages larger than one NATS message through the transport itself, on a
// server with a small max_payload: pieces in the uploads stream, a stub in
// the message's place, the whole body at the receiver, and the pieces gone
// once it is acked (nats_uploads.hpp).

#include "support/nats_server.hpp"
#include "support/raw_nats.hpp"
#include "support/transport_endpoints.hpp"
#include "support/wait_until.hpp"

#include "trellis/transport/nats_uploads.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using trellis::errc;
using trellis::detail::outgoing_task;
using trellis::test::config_for;
using trellis::test::connect;
using trellis::test::event_log;
using trellis::test::fetch_n;
using trellis::test::nats_server;
using trellis::test::nats_server_options;
using trellis::test::raw_nats;
using trellis::test::task;
using trellis::test::wait_until;

}  // namespace

TEST_CASE(
    "An event or task up to one NATS message goes whole; a larger one goes in pieces, arrives whole, and its pieces "
    "are removed once it is acked",
    "[integration][nats][events][large]") {
  nats_server_options options;
  options.config_text = "max_payload: 65536";
  nats_server server{options};
  auto cfg = config_for(server);
  auto t = connect(cfg);
  CHECK(t->max_message_bytes() == trellis::detail::max_upload_bytes());
  const std::string uploads = "TRELLIS_TEST_UPLOADS";
  auto pieces_stored = [&] {
    return server.stream_report(uploads).value("state", nlohmann::json::object()).value("messages", -1);
  };
  event_log log;
  t->consume_events(log.sink());
  // One message: max_payload less the 4 KiB kept for headers.
  std::string largest(65536 - 4096, 'e');
  REQUIRE(t->publish_events({{0, largest}}));
  REQUIRE(wait_until([&] { return !log.snapshot().empty(); }, 10s, "the largest one-message event at the sink"));
  CHECK(log.snapshot()[0].bytes == largest);
  CHECK(pieces_stored() == 0);
  t->ack_event(log.snapshot()[0]);

  std::string event(200'000, 'E');
  REQUIRE(t->publish_events({{0, event}}));
  REQUIRE(wait_until([&] { return log.snapshot().size() >= 2; }, 10s, "the event of four pieces at the sink"));
  CHECK(log.snapshot()[1].bytes == event);
  CHECK_FALSE(log.snapshot()[1].refused);
  CHECK(pieces_stored() == 4);
  t->ack_event(log.snapshot()[1]);
  CHECK(wait_until([&] { return pieces_stored() == 0; }, 10s, "the event's pieces to be removed"));

  std::string bytes(150'000, 'T');
  std::vector<outgoing_task> batch{task("wf:1:1", bytes)};
  REQUIRE(t->publish_tasks("q", batch));
  auto got = fetch_n(*t, {"q"}, 1, "the task of three pieces");
  REQUIRE(got.size() == 1);
  CHECK(got[0].bytes == bytes);
  CHECK(pieces_stored() == 3);
  t->ack_task(got[0]);
  CHECK(wait_until([&] { return pieces_stored() == 0; }, 10s, "the task's pieces to be removed"));
  CHECK(wait_until([&] { return t.bus->queue_depth("q").value() == 0; }, 10s, "the task to be acked"));
  t->close();
}

TEST_CASE("A stub whose pieces are gone is one refused delivery that names its upload and the reason",
          "[integration][nats][large]") {
  nats_server_options options;
  options.config_text = "max_payload: 65536";
  nats_server server{options};
  auto t = connect(config_for(server));
  std::vector<outgoing_task> batch{task("wf:1:1", std::string(100'000, 'T'))};
  REQUIRE(t->publish_tasks("q", batch));
  // Removed behind the stub's back (expired, or by hand).
  raw_nats raw{server.url()};
  REQUIRE(wait_until(
      [&] {
        return server.stream_report("TRELLIS_TEST_UPLOADS")
                   .value("state", nlohmann::json::object())
                   .value("messages", 0) == 2;
      },
      10s, "the two pieces to be stored"));
  REQUIRE(raw.purge_stream("TRELLIS_TEST_UPLOADS") == NATS_OK);
  auto got = fetch_n(*t, {"q"}, 1, "the stub");
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].refused);
  CHECK(got[0].refused->code() == errc::broker_unavailable);
  CHECK_THAT(got[0].refused->message(), Catch::Contains("cannot read piece 0 of 2 of upload"));
  CHECK_THAT(got[0].bytes, Catch::StartsWith("Trellis-Upload: "));
  t->ack_task(got[0]);
  t->close();
}
