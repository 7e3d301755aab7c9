#include "trellis/http/http_server.hpp"

#include "trellis/http/dashboard_assets.hpp"
#include "trellis/http/event_hub.hpp"
#include "trellis/log.hpp"
#include "trellis/prometheus_merge.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <climits>
#include <thread>
#include <utility>

namespace trellis::detail {

namespace {

/// HTTP threads: event streams hold one each for as long as they are open.
constexpr std::size_t http_threads = 24;
/// Event streams open at once; more are refused (503) so that requests
/// always find a thread.
constexpr int max_event_streams = 16;
/// How long an event stream's thread waits for events before it checks
/// whether the server stops; a comment line keeps idle streams open
/// through proxies every `keep_alive_every` waits.
constexpr auto event_wait = std::chrono::milliseconds{500};
constexpr int keep_alive_every = 30;
/// The largest request body read: a submitted workflow's JSON. Revoke and
/// replay bodies are held to `max_small_body_bytes`.
constexpr std::size_t max_body_bytes = 16 * 1024 * 1024;
constexpr std::size_t max_small_body_bytes = 64 * 1024;
/// The longest workflow id in a path.
constexpr std::size_t max_id_bytes = 256;

int status_for(errc code) {
  switch (code) {
    case errc::not_found:
      return 404;
    case errc::invalid_workflow:
      return 409;
    case errc::timeout:
      return 504;
    case errc::broker_unavailable:
    case errc::shutting_down:
    case errc::store_locked:
    case errc::store_failed:
    case errc::store_corrupt:
      return 503;
    case errc::invalid_config:
    case errc::unknown_task:
    case errc::malformed_envelope:
    case errc::payload_too_large:
    case errc::bad_arguments:
      return 400;
    default:
      return 500;
  }
}

void send_json(httplib::Response& res, int status, const value& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(to_json(body), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& type, const std::string& message) {
  send_json(res, status, value(value::map{{"error", value::map{{"type", type}, {"message", message}}}}));
}

void send_error(httplib::Response& res, const error& e) {
  send_error(res, status_for(e.code()), std::string{to_string(e.code())}, e.message());
}

template <class T>
void send_result(httplib::Response& res, const expected<T>& r) {
  if (r) {
    send_json(res, 200, value(*r));
  } else {
    send_error(res, r.error());
  }
}

/// Compares without stopping at the first difference, so that the time a
/// refusal takes tells nothing about the token.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i % std::max<std::size_t>(b.size(), 1)]);
  }
  return diff == 0;
}

std::optional<std::int64_t> parse_integer(const std::string& text, std::int64_t lo, std::int64_t hi) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi) {
    return std::nullopt;
  }
  return v;
}

/// The JSON object of a POST body (an empty body is an empty object);
/// nullopt after answering 400 or 415.
std::optional<nlohmann::json> read_body(const httplib::Request& req, httplib::Response& res) {
  auto type = req.get_header_value("Content-Type");
  if (type.rfind("application/json", 0) != 0) {
    send_error(res, 415, "invalid_config", "a POST needs Content-Type: application/json");
    return std::nullopt;
  }
  if (req.body.empty()) {
    return nlohmann::json::object();
  }
  if (req.body.size() > max_small_body_bytes) {
    send_error(res, 413, "payload_too_large", "the body is over " + std::to_string(max_small_body_bytes) + " bytes");
    return std::nullopt;
  }
  auto body = nlohmann::json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    send_error(res, 400, "malformed_envelope", "the body is not a JSON object");
    return std::nullopt;
  }
  return body;
}

}  // namespace

expected<listen_address> check_http_options(const http_options& opts) {
  const auto& text = opts.listen;
  auto bad = [&](const std::string& why) {
    return error{errc::invalid_config, "'" + text + "': " + why};
  };
  listen_address a;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return bad("expected [IPV6]:PORT");
    }
    a.host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return bad("expected HOST:PORT, e.g. 127.0.0.1:9100");
    }
    a.host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  auto number = parse_integer(port, 0, 65535);
  if (!number) {
    return bad("the port must be a number from 0 to 65535");
  }
  a.port = static_cast<int>(*number);
  a.loopback = a.host == "localhost" || a.host == "::1" || a.host.rfind("127.", 0) == 0;
  if (!a.loopback && opts.token.empty()) {
    return bad("an address off loopback needs a token (--http-token-file, TRELLIS_HTTP_TOKEN): anyone who "
               "reaches it could revoke workflows and replay dead letters");
  }
  return a;
}

struct http_server::impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  std::atomic<bool> stopping{false};
  std::atomic<int> streams{0};
  operator_api api;
  std::string token;

  bool authorized(const httplib::Request& req, httplib::Response& res) const {
    if (token.empty()) {
      return true;
    }
    auto header = req.get_header_value("Authorization");
    const std::string scheme = "Bearer ";
    if (header.rfind(scheme, 0) == 0 && same_secret(header.substr(scheme.size()), token)) {
      return true;
    }
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, "invalid_config", "this endpoint needs Authorization: Bearer TOKEN");
    return false;
  }

  /// The JSON body of a POST to an endpoint that `served` says this
  /// process has; nullopt after answering 404, 401, 415, 413 or 400.
  std::optional<nlohmann::json> accept_post(bool served, const httplib::Request& req, httplib::Response& res) const {
    if (!served) {
      send_error(res, 404, "not_found", "this process does not serve that");
      return std::nullopt;
    }
    if (!authorized(req, res)) {
      return std::nullopt;
    }
    return read_body(req, res);
  }

  void routes();
  void event_stream(const httplib::Request& req, httplib::Response& res);
};

void http_server::impl::routes() {
  auto absent = [](httplib::Response& res) { send_error(res, 404, "not_found", "this process does not serve that"); };
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200, value(value::map{{"status", "ok"}}));
  });
  server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    auto r = api.readiness ? api.readiness() : value(value::map{{"ready", true}, {"checks", value::map{}}});
    bool ready = r.is_map() && r.as_map().count("ready") != 0 && r.as_map().at("ready").is_bool() &&
                 r.as_map().at("ready").as_bool();
    send_json(res, ready ? 200 : 503, r);
  });
  server.Get("/metrics", [this, absent](const httplib::Request& req, httplib::Response& res) {
    if (!api.metrics) {
      return absent(res);
    }
    bool open = req.get_param_value("format") == "openmetrics" ||
                req.get_header_value("Accept").find("application/openmetrics-text") != std::string::npos;
    res.set_content(api.metrics(open ? metrics_format::openmetrics : metrics_format::prometheus),
                    open ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                         : "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/api/workflows", [this, absent](const httplib::Request& req, httplib::Response& res) {
    if (!api.workflows) {
      return absent(res);
    }
    workflow_list_query q;
    if (req.has_param("state") && !req.get_param_value("state").empty()) {
      auto name = req.get_param_value("state");
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      q.state = node_state_from_string(name);
      if (!q.state) {
        return send_error(res, 400, "invalid_config", "state '" + name.substr(0, 32) + "' is not a state");
      }
    }
    if (req.has_param("limit")) {
      auto limit = parse_integer(req.get_param_value("limit"), 1, 10'000);
      if (!limit) {
        return send_error(res, 400, "invalid_config", "limit must be a number from 1 to 10000");
      }
      q.limit = static_cast<std::size_t>(*limit);
    }
    q.cursor = req.get_param_value("cursor");
    if (q.cursor.size() > 512) {
      return send_error(res, 400, "invalid_config", "the cursor is over 512 bytes");
    }
    send_result(res, api.workflows(q));
  });
  server.Post("/api/workflows", [this, absent](const httplib::Request& req, httplib::Response& res) {
    if (!api.submit) {
      return absent(res);
    }
    if (!authorized(req, res)) {
      return;
    }
    if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
      return send_error(res, 415, "invalid_config", "a POST needs Content-Type: application/json");
    }
    auto workflow = value_from_json(req.body);
    if (!workflow) {
      return send_error(res, 400, "invalid_workflow", "the body is not JSON: " + workflow.error().message());
    }
    std::optional<std::string> key;
    if (req.has_param("key")) {
      key = req.get_param_value("key");
      if (key->empty() || key->size() > 1024) {
        return send_error(res, 400, "invalid_workflow", "a key is 1 to 1024 bytes");
      }
    }
    auto id = api.submit(*workflow, key);
    if (!id && id.error().code() == errc::invalid_workflow) {
      // Not a conflict here, as for a revoke: the workflow itself is bad.
      return send_error(res, 400, "invalid_workflow", id.error().message());
    }
    send_result(res, id);
  });
  const std::string id_pattern = "([0-9A-Za-z_.:~-]{1," + std::to_string(max_id_bytes) + "})";
  server.Get("/api/workflows/" + id_pattern, [this, absent](const httplib::Request& req, httplib::Response& res) {
    if (!api.workflow) {
      return absent(res);
    }
    send_result(res, api.workflow(req.matches[1]));
  });
  server.Post("/api/workflows/" + id_pattern + "/revoke",
              [this](const httplib::Request& req, httplib::Response& res) {
                auto body = accept_post(static_cast<bool>(api.revoke), req, res);
                if (!body) {
                  return;
                }
                revoke_query q;
                q.workflow_id = req.matches[1];
                if (body->contains("node")) {
                  const auto& node = (*body)["node"];
                  if (!node.is_number_integer() || node.get<std::int64_t>() < 0 ||
                      node.get<std::int64_t>() > INT32_MAX) {
                    return send_error(res, 400, "invalid_config", "'node' must be a node number");
                  }
                  q.node = static_cast<std::int32_t>(node.get<std::int64_t>());
                }
                if (body->contains("terminate")) {
                  if (!(*body)["terminate"].is_boolean()) {
                    return send_error(res, 400, "invalid_config", "'terminate' must be true or false");
                  }
                  q.terminate = (*body)["terminate"].get<bool>();
                }
                send_result(res, api.revoke(q));
              });
  server.Get("/api/queues", [this, absent](const httplib::Request&, httplib::Response& res) {
    return api.queues ? send_result(res, api.queues()) : absent(res);
  });
  server.Get("/api/workers", [this, absent](const httplib::Request&, httplib::Response& res) {
    return api.workers ? send_result(res, api.workers()) : absent(res);
  });
  server.Get("/api/schedules", [this, absent](const httplib::Request&, httplib::Response& res) {
    return api.schedules ? send_result(res, api.schedules()) : absent(res);
  });
  server.Get("/api/dead-letters", [this, absent](const httplib::Request&, httplib::Response& res) {
    return api.dead_letters ? send_result(res, api.dead_letters()) : absent(res);
  });
  server.Post(R"(/api/dead-letters/([0-9]{1,18})/replay)",
              [this](const httplib::Request& req, httplib::Response& res) {
                auto body = accept_post(static_cast<bool>(api.replay), req, res);
                if (!body) {
                  return;
                }
                int partition = 0;
                if (body->contains("partition")) {
                  const auto& p = (*body)["partition"];
                  if (!p.is_number_integer() || p.get<std::int64_t>() < 0 || p.get<std::int64_t>() > 1023) {
                    return send_error(res, 400, "invalid_config", "'partition' must be a number from 0 to 1023");
                  }
                  partition = static_cast<int>(p.get<std::int64_t>());
                }
                auto letter = parse_integer(req.matches[1], 0, INT64_MAX);
                send_result(res, api.replay(letter.value_or(0), partition));
              });
  server.Get("/api/events", [this, absent](const httplib::Request& req, httplib::Response& res) {
    if (!api.events) {
      return absent(res);
    }
    event_stream(req, res);
  });
  auto asset = [](const std::string& path, httplib::Response& res) {
    const auto* a = find_dashboard_asset(path);
    if (a == nullptr) {
      return send_error(res, 404, "not_found", "no such page");
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:");
    res.set_content(std::string{a->body}, a->content_type);
  };
  server.Get("/", [asset](const httplib::Request&, httplib::Response& res) { asset("/index.html", res); });
  server.Get(R"(/([a-z]+\.(html|js|css)))",
             [asset](const httplib::Request& req, httplib::Response& res) { asset("/" + req.matches[1].str(), res); });
}

void http_server::impl::event_stream(const httplib::Request& req, httplib::Response& res) {
  if (streams.fetch_add(1) >= max_event_streams) {
    streams.fetch_sub(1);
    return send_error(res, 503, "shutting_down",
                      "too many event streams are open (" + std::to_string(max_event_streams) + ")");
  }
  // A reconnecting EventSource says where it was; a new one starts now.
  auto after = api.events->latest();
  if (auto last = parse_integer(req.get_header_value("Last-Event-ID"), 0, INT64_MAX)) {
    after = static_cast<std::uint64_t>(*last);
  }
  res.set_header("Cache-Control", "no-store");
  auto idle = std::make_shared<int>(0);
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, after, idle](std::size_t, httplib::DataSink& sink) mutable {
        if (stopping) {
          sink.done();
          return false;
        }
        auto b = api.events->read_after(after, 512, event_wait);
        if (b.closed) {
          sink.done();
          return false;
        }
        std::string out;
        if (b.missed > 0) {
          out += "event: missed\ndata: {\"missed\":" + std::to_string(b.missed) + "}\n\n";
        }
        for (const auto& item : b.items) {
          out += "id: " + std::to_string(item.seq) + "\nevent: " + item.kind + "\ndata: " + item.json + "\n\n";
          after = item.seq;
        }
        if (out.empty()) {
          if (++*idle < keep_alive_every) {
            return sink.is_writable();
          }
          out = ": keep-alive\n\n";
        }
        *idle = 0;
        return sink.write(out.data(), out.size());
      },
      [this](bool) { streams.fetch_sub(1); });
}

http_server::http_server(std::unique_ptr<impl> i) : impl_(std::move(i)) {}

expected<std::unique_ptr<http_server>> http_server::start(const http_options& opts, operator_api api,
                                                          const std::string& process) {
  auto address = check_http_options(opts);
  if (!address) {
    return address.error();
  }
  auto i = std::make_unique<impl>();
  i->api = std::move(api);
  i->token = opts.token;
  i->server.new_task_queue = [] { return new httplib::ThreadPool(http_threads); };
  i->server.set_payload_max_length(max_body_bytes);
  i->server.set_read_timeout(10, 0);
  i->server.set_write_timeout(10, 0);
  i->routes();
  if (address->port == 0) {
    i->port = i->server.bind_to_any_port(address->host);
  } else if (i->server.bind_to_port(address->host, address->port)) {
    i->port = address->port;
  } else {
    i->port = -1;
  }
  if (i->port <= 0) {
    return error{errc::invalid_config,
                 "'" + opts.listen + "': cannot listen there (address in use, or not this machine's)"};
  }
  auto* raw = i.get();
  i->thread = std::thread{[raw] { raw->server.listen_after_bind(); }};
  log::info() << process << " serves HTTP on http://" << (address->host.find(':') != std::string::npos ? "[" : "")
              << address->host << (address->host.find(':') != std::string::npos ? "]" : "") << ":" << i->port
              << "/ (metrics, health, API, dashboard)";
  return std::unique_ptr<http_server>{new http_server{std::move(i)}};
}

http_server::~http_server() { stop(); }

int http_server::port() const noexcept { return impl_->port; }

void http_server::stop() {
  if (impl_->stopping.exchange(true)) {
    return;
  }
  impl_->server.stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
}

}  // namespace trellis::detail
