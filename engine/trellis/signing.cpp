#include "trellis/signing.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <fstream>
#include <iterator>

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
  return "signing key: " + std::to_string(size) + " bytes, fewer than the " +
         std::to_string(min_signing_key_bytes) + " required (make one with: openssl rand -hex 32)";
}

/// The HMAC of `body` under `key` as raw bytes.
void hmac(const std::string& key, std::string_view body, unsigned char (&out)[digest_bytes]) {
  unsigned int length = 0;
  // One-shot HMAC: no context to share between threads, and at a few
  // hundred bytes per message its set-up cost is below a microsecond.
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(body.data()),
       body.size(), out, &length);
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

message_signer::message_signer(std::string key) : key_(std::move(key)) {
  if (key_.size() < min_signing_key_bytes) {
    auto size = key_.size();
    wipe(key_);
    throw setup_error(errc::invalid_config, too_short(size));
  }
}

message_signer::~message_signer() { wipe(key_); }

std::string message_signer::sign(std::string_view body) const {
  unsigned char digest[digest_bytes];
  hmac(key_, body, digest);
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
  auto expected_signature = sign(body);
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
