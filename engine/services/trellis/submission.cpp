#include "trellis/submission.hpp"

#include "trellis/clock.hpp"

#include <openssl/evp.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>

namespace trellis::detail {

std::string new_workflow_id() {
  // One generator per thread, seeded once: no lock between submitting
  // threads, and no read of the entropy source per id.
  thread_local std::mt19937_64 ids{[] {
    std::random_device seed;
    return (static_cast<std::uint64_t>(seed()) << 32) ^ seed();
  }()};
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(ids()),
                static_cast<unsigned long long>(ids()));
  return buf;
}

std::string workflow_id_for_key(const std::string& ns, const std::string& key) {
  // Length-prefixed parts: ("a", "bc") and ("ab", "c") differ.
  std::string input = "trellis-submit-key";
  for (const auto* part : {&ns, &key}) {
    input += std::to_string(part->size());
    input += ':';
    input += *part;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(input.data(), input.size(), digest, &length, EVP_sha256(), nullptr) != 1 || length < 16) {
    // Only when OpenSSL cannot allocate: nothing sensible to return.
    throw std::runtime_error("SHA-256 failed while deriving a workflow id from a submit key");
  }
  char buf[33];
  for (int i = 0; i < 16; ++i) {
    std::snprintf(buf + 2 * i, 3, "%02x", static_cast<unsigned>(digest[i]));
  }
  return buf;
}

envelope submission_envelope(const std::string& workflow_id, const canvas& flow,
                             const std::optional<std::string>& submit_key) {
  envelope e;
  e.type = envelope_type::submit;
  e.workflow_id = workflow_id;
  e.id = workflow_id + ":submit";
  e.payload = to_value(flow);
  if (submit_key) {
    e.options["submit_key"] = *submit_key;
  }
  e.sent_at = now_epoch_ms();
  return e;
}

expected<void> check_priorities_honoured(const canvas& flow, bool honoured) {
  if (honoured) {
    return {};
  }
  if (const auto* step = first_prioritized_step(flow)) {
    return error{errc::invalid_workflow,
                 "step '" + step->task() + "' sets priority " + std::to_string(*step->options().priority) +
                     ", which cluster mode does not honour (NATS delivers a queue's tasks in publish order); "
                     "remove the option, or route urgent tasks to a queue of their own with its own workers"};
  }
  return {};
}

expected<std::string> encode_submission(const envelope& e, std::size_t max_bytes) {
  auto bytes = encode(e);
  if (bytes.size() > max_bytes) {
    return error{errc::payload_too_large, "the workflow encodes to " + std::to_string(bytes.size()) +
                                              " bytes, beyond max_submission_bytes (" + std::to_string(max_bytes) +
                                              "); raise the limit, or split it into several workflows"};
  }
  return bytes;
}

}  // namespace trellis::detail
