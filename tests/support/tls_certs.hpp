#pragma once

/// @file
/// TLS files for tests that run nats-server with TLS: a throwaway CA, a
/// server certificate for 127.0.0.1 and a client certificate, made by the
/// `openssl` command into a test's temp dir. The binary comes from CMake
/// (`find_program(OPENSSL_PROGRAM openssl)`, compile definition
/// TRELLIS_OPENSSL_BIN).

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "support/child_process.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

#ifndef TRELLIS_OPENSSL_BIN
#error "TRELLIS_OPENSSL_BIN must name the openssl binary (tests/CMakeLists.txt sets it)"
#endif

namespace trellis::test {

/// PEM files, all inside one temp dir.
struct tls_files {
  std::string ca;
  std::string server_cert;
  std::string server_key;
  std::string client_cert;
  std::string client_key;

  /// The `tls { ... }` block of a nats-server config using these files;
  /// `verify_clients` makes the server demand a client certificate.
  std::string server_config(bool verify_clients = false) const {
    return "tls {\n  cert_file: \"" + server_cert + "\"\n  key_file: \"" + server_key + "\"\n  ca_file: \"" + ca +
           "\"\n" + (verify_clients ? "  verify: true\n" : "") + "}\n";
  }
};

namespace detail_tls {

inline void openssl(const temp_dir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), TRELLIS_OPENSSL_BIN);
  auto r = run_command(args, dir.file("openssl"), std::chrono::seconds{60});
  if (r.status != 0) {
    throw std::runtime_error("openssl failed (" + std::to_string(r.status) + "): " + r.err);
  }
}

/// A key and a certificate for `cn` signed by the CA in `files`.
inline void issue(const temp_dir& dir, const tls_files& files, const std::string& name, const std::string& cn,
                  const std::string& extensions) {
  auto ext = write_file(dir, name + ".ext", extensions + "\n");
  openssl(dir, {"req", "-newkey", "rsa:2048", "-nodes", "-keyout", dir.file(name + ".key"), "-out",
                dir.file(name + ".csr"), "-subj", "/CN=" + cn});
  openssl(dir, {"x509", "-req", "-in", dir.file(name + ".csr"), "-CA", files.ca, "-CAkey", dir.file("ca.key"),
                "-CAcreateserial", "-out", dir.file(name + ".pem"), "-days", "2", "-extfile", ext});
}

}  // namespace detail_tls

/// Makes a CA, a server certificate valid for 127.0.0.1 and localhost, and
/// a client certificate, in `dir`. Throws `std::runtime_error` with
/// openssl's message when it fails.
inline tls_files make_tls_files(const temp_dir& dir) {
  tls_files f;
  f.ca = dir.file("ca.pem");
  detail_tls::openssl(dir, {"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir.file("ca.key"), "-out",
                            f.ca, "-days", "2", "-subj", "/CN=trellis-test-ca"});
  detail_tls::issue(dir, f, "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost");
  detail_tls::issue(dir, f, "client", "trellis-test-client", "extendedKeyUsage=clientAuth");
  f.server_cert = dir.file("server.pem");
  f.server_key = dir.file("server.key");
  f.client_cert = dir.file("client.pem");
  f.client_key = dir.file("client.key");
  return f;
}

}  // namespace trellis::test
