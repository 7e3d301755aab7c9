#include "trellis/transport/nats_transport.hpp"

#include "trellis/transport/nats_link.hpp"

#include <utility>

namespace trellis::detail {

expected<std::shared_ptr<nats_transport>> nats_transport::connect(nats_config cfg) {
  auto link = nats_link::open(std::move(cfg));
  if (!link) {
    return link.error();
  }
  return std::shared_ptr<nats_transport>{*link, &(*link)->transport_face};
}

nats_transport::~nats_transport() = default;

expected<void> nats_transport::publish_tasks(const std::string& queue, std::vector<outgoing_task>& messages) {
  return link_.publishers.publish_tasks(queue, messages);
}

std::vector<delivery> nats_transport::fetch_tasks(const std::vector<std::string>& queues, std::size_t max,
                                                  std::chrono::milliseconds wait) {
  link_.keepalive.start();
  return link_.consumers.fetch_tasks(queues, max, wait);
}

void nats_transport::ack_task(const delivery& d) { link_.consumers.ack(d); }

void nats_transport::touch_task(const delivery& d) { link_.consumers.touch(d); }

void nats_transport::release_task(const delivery& d) { link_.consumers.release(d); }

expected<std::int64_t> nats_transport::reserve_start(const std::string& task, std::int64_t interval_us) {
  return link_.rates.reserve(task, interval_us);
}

std::size_t nats_transport::max_message_bytes() const {
  // Larger than one NATS message travels in pieces (nats_uploads.hpp).
  return max_upload_bytes();
}

expected<std::unordered_set<std::string>> nats_transport::work_already_out(int partition) {
  return link_.consumers.work_already_out(partition);
}

expected<void> nats_transport::publish_events(std::vector<outgoing_event> messages) {
  return link_.publishers.publish_events(std::move(messages));
}

void nats_transport::consume_events(std::function<void(std::vector<delivery>)> sink) {
  link_.keepalive.start();
  link_.events.start(std::move(sink));
}

void nats_transport::ack_event(const delivery& d) { link_.consumers.ack(d); }

void nats_transport::close() { link_.close(); }

void nats_transport::consume_submissions(std::function<void(delivery)> sink) {
  link_.submissions.consume(std::move(sink));
}

void nats_transport::answer_submission(const delivery& d, const std::string& reply) {
  link_.submissions.answer(d, reply);
}

void nats_transport::consume_control(std::function<void(delivery)> sink) { link_.control.consume(std::move(sink)); }

void nats_transport::answer_control(const delivery& d, const std::string& reply) { link_.control.answer(d, reply); }

bool nats_transport::announces_lifecycle() const { return link_.connection.cfg().task_events; }

void nats_transport::announce_lifecycle(const std::vector<lifecycle_event>& events) {
  link_.lifecycle.publish(events);
}

std::int32_t nats_transport::max_deliver() const noexcept { return link_.connection.cfg().max_deliver; }

}  // namespace trellis::detail
