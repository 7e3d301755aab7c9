#include "trellis/transport/cluster_bus.hpp"

#include "trellis/transport/nats_link.hpp"

#include <utility>

namespace trellis::detail {

expected<nats_endpoints> connect_nats(nats_config cfg) {
  auto link = nats_link::open(std::move(cfg));
  if (!link) {
    return link.error();
  }
  nats_endpoints out;
  out.transport = std::shared_ptr<nats_transport>{*link, &(*link)->transport_face};
  out.bus = std::shared_ptr<cluster_bus>{*link, &(*link)->bus_face};
  return out;
}

expected<std::shared_ptr<cluster_bus>> cluster_bus::connect(nats_config cfg) {
  auto link = nats_link::open(std::move(cfg));
  if (!link) {
    return link.error();
  }
  return std::shared_ptr<cluster_bus>{*link, &(*link)->bus_face};
}

void cluster_bus::consume_submissions(std::function<void(delivery)> sink) {
  link_.submissions.consume(std::move(sink));
}

void cluster_bus::answer_submission(const delivery& d, const std::string& reply) { link_.submissions.answer(d, reply); }

expected<std::string> cluster_bus::request_submission(const std::string& bytes, std::chrono::milliseconds timeout,
                                                      std::optional<int> partition) {
  return link_.submissions.request(bytes, timeout, partition);
}

expected<void> cluster_bus::publish_done(const std::string& workflow_id, const std::string& bytes) {
  return link_.done.publish(workflow_id, bytes);
}

std::size_t cluster_bus::max_notice_bytes() const { return link_.connection.max_message_bytes(); }

expected<void> cluster_bus::watch_done(const std::string& workflow_id, std::function<void(std::string)> sink) {
  return link_.done.watch(workflow_id, std::move(sink));
}

void cluster_bus::unwatch_done(const std::string& workflow_id) { link_.done.unwatch(workflow_id); }

expected<void> cluster_bus::watch_lifecycle(std::function<void(std::string)> sink) {
  return link_.lifecycle.watch(std::move(sink));
}

void cluster_bus::consume_control(std::function<void(delivery)> sink) { link_.control.consume(std::move(sink)); }

void cluster_bus::answer_control(const delivery& d, const std::string& reply) { link_.control.answer(d, reply); }

expected<void> cluster_bus::serve_control(const std::string& verb, std::function<void(delivery)> sink) {
  return link_.control.serve(verb, std::move(sink));
}

expected<std::string> cluster_bus::request_control(const std::string& verb, int partition, const std::string& bytes,
                                                   std::chrono::milliseconds timeout) {
  return link_.control.request(verb, partition, bytes, timeout);
}

expected<std::vector<std::string>> cluster_bus::gather_control(const std::string& verb, const std::string& bytes,
                                                               std::chrono::milliseconds window) {
  return link_.control.gather(verb, bytes, window);
}

expected<void> cluster_bus::publish_revocation(const std::string& workflow_id, const std::string& bytes) {
  return link_.revocations.publish(workflow_id, bytes);
}

expected<void> cluster_bus::watch_revocations(std::function<void(std::string)> sink) {
  return link_.revocations.watch(std::move(sink));
}

expected<void> cluster_bus::watch_exhausted_tasks(std::function<void(exhausted_task)> sink) {
  return link_.lost_tasks.watch(std::move(sink));
}

expected<void> cluster_bus::settle_exhausted_task(std::uint64_t token) { return link_.lost_tasks.settle(token); }

void cluster_bus::pass_exhausted_task(std::uint64_t token) { link_.lost_tasks.pass(token); }

expected<void> cluster_bus::discard_exhausted_task(std::uint64_t stream_sequence) {
  return link_.lost_tasks.discard(stream_sequence);
}

expected<std::uint64_t> cluster_bus::queue_depth(const std::string& queue) {
  auto filter = link_.connection.names().queue_tasks(queue);
  if (!filter) {
    return filter.error();
  }
  auto census = read_task_census(link_.connection, *filter);
  if (!census) {
    return error{census.error().code(), "cannot read the depth of queue '" + queue + "': " + census.error().message()};
  }
  // The stream holds a queue's messages until they are acked (work queue),
  // so the per-subject counts add up to the lag: waiting plus delivered and
  // not acked, over every task of the queue.
  std::uint64_t depth = 0;
  for (const auto& s : *census) {
    depth += s.messages;
  }
  return depth;
}

expected<std::vector<queued_subject>> cluster_bus::queued_tasks() {
  return read_task_census(link_.connection, link_.connection.names().all_tasks());
}

void cluster_bus::on_reconnect(std::function<void()> listener) { link_.connection.on_reconnect(std::move(listener)); }

std::string cluster_bus::process_name() const { return link_.connection.process_name(); }

bool cluster_bus::is_connected() const { return link_.connection.is_connected(); }

std::optional<error> cluster_bus::last_error() const { return link_.connection.last_error(); }

std::string cluster_bus::describe() const { return link_.connection.describe(); }

}  // namespace trellis::detail
