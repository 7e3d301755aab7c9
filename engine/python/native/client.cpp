#include "native/client.hpp"

#include "native/errors.hpp"
#include "native/values.hpp"
#include "native/waiting.hpp"

#include "trellis/client.hpp"

#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace py = pybind11;

namespace trellis::python {

namespace {

std::chrono::milliseconds seconds(py::handle s) {
  return std::chrono::milliseconds{static_cast<std::int64_t>(s.cast<double>() * 1000)};
}

client_options client_options_from(py::dict options) {
  client_options opts;
  for (auto [key, item] : options) {
    auto name = key.cast<std::string>();
    if (name == "broker") {
      opts.broker_urls = {item.cast<std::string>()};
    } else if (name == "brokers") {
      opts.broker_urls = item.cast<std::vector<std::string>>();
    } else if (name == "namespace") {
      opts.ns = item.cast<std::string>();
    } else if (name == "partitions") {
      opts.partitions = item.cast<int>();
    } else if (name == "user") {
      opts.user = item.cast<std::string>();
    } else if (name == "password") {
      opts.password = item.cast<std::string>();
    } else if (name == "token") {
      opts.token = item.cast<std::string>();
    } else if (name == "creds_file") {
      opts.creds_file = item.cast<std::string>();
    } else if (name == "tls_ca_file") {
      opts.tls_ca_file = item.cast<std::string>();
    } else if (name == "tls_cert_file") {
      opts.tls_cert_file = item.cast<std::string>();
    } else if (name == "tls_key_file") {
      opts.tls_key_file = item.cast<std::string>();
    } else if (name == "signing_key_file") {
      opts.signing_key_file = item.cast<std::string>();
    } else if (name == "signing_key") {
      opts.signing_key = item.cast<std::string>();
    } else if (name == "submit_timeout") {
      opts.submit_timeout = seconds(item);
    } else if (name == "request_timeout") {
      opts.request_timeout = seconds(item);
    } else if (name == "client_name") {
      opts.client_name = item.cast<std::string>();
    } else {
      throw py::type_error("unknown client option '" + name +
                           "' (broker, brokers, namespace, partitions, user, password, token, creds_file, "
                           "tls_ca_file, tls_cert_file, tls_key_file, signing_key_file, signing_key, "
                           "submit_timeout, request_timeout, client_name)");
    }
  }
  return opts;
}

template <class T, class Call>
T released(Call&& call) {
  py::gil_scoped_release release;
  return call();
}

}  // namespace

void bind_client(py::module_& m) {
  py::class_<client_handle>(m, "ClientHandle", "A workflow submitted to (or found in) a cluster.")
      .def_property_readonly("id", &client_handle::id)
      .def("wait", &wait_for_result<client_handle>, py::arg("timeout") = py::none(),
           "The result; raises WorkflowFailed, Revoked or Timeout (seconds; None: no limit).")
      .def_property_readonly("state", &state_of<client_handle>)
      .def_property_readonly("error_details", [](const client_handle& h) {
        return to_python(released<value>([&] { return h.error_details(); }));
      });

  // A shared pointer: handles keep the connection open themselves, and
  // Python may drop the client before its handles.
  py::class_<client, std::shared_ptr<client>>(m, "Client", "A connection to a Trellis cluster (trellis::client).")
      .def(py::init([](py::dict options) {
             auto opts = client_options_from(options);
             auto connected = released<expected<std::unique_ptr<client>>>([&] { return client::connect(opts); });
             return std::shared_ptr<client>(value_or_raise(std::move(connected)));
           }),
           py::arg("options"))
      .def(
          "submit",
          [](client& c, const canvas& flow, std::optional<std::string> key) {
            return value_or_raise(released<expected<client_handle>>([&] { return c.submit(flow, key); }));
          },
          py::arg("canvas"), py::arg("key") = py::none())
      .def("find",
           [](client& c, const std::string& id) {
             return value_or_raise(released<expected<client_handle>>([&] { return c.find(id); }));
           })
      .def("status",
           [](client& c, const std::string& id) {
             return to_python(value_or_raise(released<expected<value>>([&] { return c.status(id); })));
           })
      .def(
          "revoke",
          [](client& c, const std::string& id, std::optional<std::int32_t> node, bool terminate) {
            revoke_options opts{node, terminate};
            return to_python(value_or_raise(released<expected<value>>([&] { return c.revoke(id, opts); })));
          },
          py::arg("id"), py::arg("node") = py::none(), py::arg("terminate") = false)
      .def(
          "dead_letters",
          [](client& c, int partition) {
            return to_python(
                value(value_or_raise(released<expected<value::array>>([&] { return c.dead_letters(partition); }))));
          },
          py::arg("partition") = 0)
      .def(
          "replay_dead_letter",
          [](client& c, std::int64_t letter, int partition) {
            return value_or_raise(
                released<expected<client_handle>>([&] { return c.replay_dead_letter(letter, partition); }));
          },
          py::arg("letter"), py::arg("partition") = 0)
      .def_property_readonly("namespace", &client::ns)
      .def_property_readonly("partitions", &client::partitions);

  m.def("workflow_id_for_key", &workflow_id_for_key, py::arg("namespace"), py::arg("key"));
}

}  // namespace trellis::python
