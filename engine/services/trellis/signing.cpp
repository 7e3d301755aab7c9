#include "trellis/signing.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace trellis::detail {

namespace {

constexpr const char* signature_prefix = "sha256=";
constexpr std::size_t digest_bytes = 32;

void wipe(std::string& s) {
  if (!s.empty()) {
    OPENSSL_cleanse(s.data(), s.size());
  }
}

std::string too_short(std::size_t size) {
  return "signing key: " + std::to_string(size) + " bytes, fewer than the " + std::to_string(min_signing_key_bytes) +
         " required (make one with: openssl rand -hex 32)";
}

/// An HMAC-SHA256 context initialised with `key`. OpenSSL failing here is a
/// broken installation, not bad input.
std::shared_ptr<const EVP_MAC_CTX> keyed_hmac(const std::string& key) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, OSSL_MAC_NAME_HMAC, nullptr);
  if (mac == nullptr) {
    throw std::runtime_error("OpenSSL has no HMAC");
  }
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac);  // the context holds its own reference
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  if (ctx == nullptr ||
      EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) != 1) {
    EVP_MAC_CTX_free(ctx);
    throw std::runtime_error("OpenSSL cannot set up HMAC-SHA256");
  }
  return std::shared_ptr<const EVP_MAC_CTX>{
      ctx, [](const EVP_MAC_CTX* c) { EVP_MAC_CTX_free(const_cast<EVP_MAC_CTX*>(c)); }};
}

}  // namespace

expected<message_signer> message_signer::from_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    return error{errc::invalid_config, "signing key file '" + path + "': cannot be read"};
  }
  std::string key{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
  if (in.bad()) {
    wipe(key);
    return error{errc::invalid_config, "signing key file '" + path + "': cannot be read"};
  }
  while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ' || key.back() == '\t')) {
    key.pop_back();
  }
  if (key.size() < min_signing_key_bytes) {
    auto size = key.size();
    wipe(key);
    return error{errc::invalid_config, "signing key file '" + path + "': " + too_short(size)};
  }
  return message_signer{std::move(key)};
}

message_signer::message_signer(std::string key) {
  if (key.size() < min_signing_key_bytes) {
    auto size = key.size();
    wipe(key);
    throw setup_error(errc::invalid_config, too_short(size));
  }
  keyed_ = keyed_hmac(key);
  wipe(key);
}

expected<std::string> message_signer::sign(std::string_view body) const {
  unsigned char digest[digest_bytes];
  std::size_t length = 0;
  // A copy per message: the keyed original is shared by every thread and
  // only ever read.
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(keyed_.get());
  bool ok = ctx != nullptr &&
            EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(body.data()), body.size()) == 1 &&
            EVP_MAC_final(ctx, digest, &length, sizeof digest) == 1 && length == digest_bytes;
  EVP_MAC_CTX_free(ctx);
  if (!ok) {
    return error{errc::broker_unavailable, "cannot sign a message: OpenSSL failed to compute an HMAC-SHA256"};
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = signature_prefix;
  out.reserve(out.size() + 2 * digest_bytes);
  for (unsigned char b : digest) {
    out += hex[b >> 4];
    out += hex[b & 0xf];
  }
  return out;
}

expected<void> message_signer::verify(std::string_view body, const char* signature) const {
  if (signature == nullptr || *signature == '\0') {
    return error{errc::unsigned_message, std::string{"unsigned message: no "} + signature_header + " header"};
  }
  auto computed = sign(body);
  if (!computed) {
    return computed.error();  // not the message's fault: OpenSSL could not compute the HMAC
  }
  const std::string& expected_signature = *computed;
  // Compared in constant time over the expected length, so the time taken
  // says nothing about how much of a forged signature was right.
  bool same_length = std::strlen(signature) == expected_signature.size();
  bool same = same_length && CRYPTO_memcmp(signature, expected_signature.data(), expected_signature.size()) == 0;
  if (!same) {
    return error{errc::bad_signature, std::string{"bad signature: the "} + signature_header +
                                          " header does not match the body under this cluster's key"};
  }
  return {};
}

}  // namespace trellis::detail
