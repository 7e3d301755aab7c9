#include "trellis/namespace_operator.hpp"

#include "trellis/client_core.hpp"
#include "trellis/control_messages.hpp"
#include "trellis/lifecycle_events.hpp"
#include "trellis/log.hpp"
#include "trellis/operator_views.hpp"
#include "trellis/prometheus_merge.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace trellis::detail {

namespace {

/// Requests to one dispatcher (a page, a graph, a revoke) from an HTTP
/// thread wait this long; a submission is never made here.
constexpr auto request_timeout = std::chrono::seconds{10};

std::string text_of(const value::map& m, const char* key) {
  auto i = m.find(key);
  return i != m.end() && i->second.is_string() ? i->second.as_string() : std::string{};
}

}  // namespace

expected<std::shared_ptr<namespace_operator>> namespace_operator::connect(const cluster_options& opts,
                                                                          const std::string& name) {
  std::shared_ptr<namespace_operator> self{new namespace_operator};
  auto c = connect_client(opts, name, request_timeout, request_timeout);
  if (!c) {
    return c.error();
  }
  self->client_ = std::move(*c);
  self->limits_ = opts.limits;
  auto cfg = nats_config_for(opts, name + "-events");
  cfg.declare_streams = false;  // a client: it changes no stream
  auto bus = cluster_bus::connect(std::move(cfg));
  if (!bus) {
    return bus.error();
  }
  self->bus_ = std::move(*bus);
  auto ok = self->bus_->watch_lifecycle([hub = self->hub_](std::string bytes) {
    auto events = decode_lifecycle_batch(bytes);
    if (!events) {
      log::warn() << "ignoring a task event batch: " << to_string(events.error());
      return;
    }
    hub->publish(*events);
  });
  if (!ok) {
    return ok.error();
  }
  return self;
}

expected<std::vector<value::map>> namespace_operator::gather(control_op op) {
  control_request request;
  request.op = op;
  auto replies = bus_->gather_control(subject_verb(op), encode(request), answer_window);
  if (!replies) {
    return replies.error();
  }
  std::vector<value::map> answers;
  for (const auto& bytes : *replies) {
    auto body = decode_control_reply(bytes);
    if (body && body->is_map()) {
      answers.push_back(std::move(*body).as_map());
    } else {
      log::warn() << "ignoring an unreadable " << to_string(op)
                  << " answer: " << (body ? std::string{"not a map"} : to_string(body.error()));
    }
  }
  // Workers before dispatchers, then by name: what is shown does not depend
  // on the order the answers came in.
  std::sort(answers.begin(), answers.end(), [](const value::map& a, const value::map& b) {
    return std::make_pair(text_of(b, "role"), text_of(a, "name")) < std::make_pair(text_of(a, "role"), text_of(b, "name"));
  });
  return answers;
}

std::string namespace_operator::namespace_metrics(metrics_format format) {
  prometheus_merge merged;
  auto answers = gather(control_op::metrics);
  if (!answers) {
    log::warn() << "cannot collect the namespace's metrics: " << to_string(answers.error());
    return in_format(merged.text(), format);
  }
  for (const auto& a : *answers) {
    if (auto ok = merged.add(text_of(a, "text"), "process", text_of(a, "name")); !ok) {
      log::warn() << "ignoring the metrics of " << text_of(a, "name") << ": " << ok.error().message();
    }
  }
  return in_format(merged.text(), format);
}

expected<value> namespace_operator::workers() {
  auto answers = gather(control_op::inspect);
  if (!answers) {
    return answers.error();
  }
  value::array rows;
  for (auto& a : *answers) {
    rows.emplace_back(std::move(a));
  }
  return value(std::move(rows));
}

operator_api namespace_operator::api() {
  operator_api api;
  // Each function holds the operator, so the connections live as long as
  // the HTTP server that calls them.
  auto self = shared_from_this();
  api.metrics = [self](metrics_format f) { return self->namespace_metrics(f); };
  api.readiness = [self] {
    bool up = self->bus_->is_connected();
    value::map broker{{"ok", up}, {"detail", up ? std::string{"connected"} : std::string{"not connected"}}};
    return value(value::map{{"ready", up}, {"checks", value::map{{"broker", std::move(broker)}}}});
  };
  api.workflows = [self](const workflow_list_query& q) {
    return self->client_->workflows(workflow_query{q.state, q.limit, q.cursor});
  };
  api.workflow = [self](const std::string& id) { return self->client_->graph(id); };
  api.queues = [self]() -> expected<value> {
    return value(queue_rows(self->namespace_metrics(metrics_format::prometheus)));
  };
  api.workers = [self] { return self->workers(); };
  api.dead_letters = [self]() -> expected<value> {
    value::array all;
    for (int p = 0; p < self->client_->partitions(); ++p) {
      auto letters = self->client_->dead_letters(p);
      if (!letters) {
        return letters.error();
      }
      for (auto& l : *letters) {
        if (l.is_map()) {
          l.as_map()["partition"] = p;
        }
        all.push_back(std::move(l));
      }
    }
    std::stable_sort(all.begin(), all.end(), [](const value& a, const value& b) {
      auto at = [](const value& v) -> std::int64_t {
        if (!v.is_map()) {
          return 0;
        }
        auto i = v.as_map().find("created_at");
        return i != v.as_map().end() && i->second.is_integer() ? i->second.as_int() : 0;
      };
      return at(a) > at(b);
    });
    return value(std::move(all));
  };
  api.submit = [self](const value& workflow, const std::optional<std::string>& key) -> expected<value> {
    // The dispatcher checks the task names: this process may register none.
    auto flow = canvas_from_value(workflow, self->limits_);
    if (!flow) {
      return flow.error();
    }
    auto h = self->client_->submit(*flow, key);
    if (!h) {
      return h.error();
    }
    return value(value::map{{"id", h->id()}});
  };
  api.revoke = [self](const revoke_query& q) {
    return self->client_->revoke(q.workflow_id, revoke_options{q.node, q.terminate});
  };
  api.replay = [self](std::int64_t letter, int partition) -> expected<value> {
    auto h = self->client_->replay_dead_letter(letter, partition);
    if (!h) {
      return h.error();
    }
    return value(value::map{{"id", h->id()}});
  };
  api.events = hub_;
  return api;
}

}  // namespace trellis::detail
