#include "trellis/transport/nats_rates.hpp"

#include "trellis/transport/nats_connection.hpp"
#include "trellis/transport/start_gate.hpp"

#include <charconv>
#include <memory>

namespace trellis::detail {

namespace {

using entry_ptr = nats_handle<kvEntry, kvEntry_Destroy>;

// Compare-and-set tries in a row before the caller is told to back off: a
// conflict means another worker reserved a slot of the same name just now,
// so a few dozen are only exhausted when the bucket keeps refusing writes.
constexpr int max_tries = 32;

/// A stored slot; 0 (free) for a value that is not a plain decimal, which
/// only someone else's write can leave there.
std::int64_t slot_of(kvEntry* e) {
  const auto* text = static_cast<const char*>(kvEntry_Value(e));
  auto len = kvEntry_ValueLen(e);
  std::int64_t us = 0;
  if (text == nullptr || len <= 0 || len > 20) {
    return 0;
  }
  auto [end, ec] = std::from_chars(text, text + len, us);
  return ec == std::errc{} && end == text + len && us > 0 ? us : 0;
}

/// Whether a failed write was refused because the key changed under it
/// (another worker reserved first): the server answers such a write with an
/// error (NATS_ERR), whereas a broker that is away does not answer at all.
bool is_conflict(natsStatus s) { return s == NATS_ERR; }

}  // namespace

std::string rate_key(const std::string& task) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string key;
  key.reserve(task.size() * 2);
  for (unsigned char c : task) {
    key.push_back(digits[c >> 4]);
    key.push_back(digits[c & 15]);
  }
  return key;
}

void rate_gate::clear() {
  std::lock_guard<std::mutex> guard{mutex_};
  kv_.reset();
}

expected<rate_gate::bucket_ptr> rate_gate::bucket() {
  std::lock_guard<std::mutex> guard{mutex_};
  if (kv_) {
    return kv_;
  }
  if (auto down = conn_.unless_connected("cannot reserve a rate-limit slot")) {
    return *down;
  }
  auto name = conn_.names().rate_bucket();
  kvStore* kv = nullptr;
  auto s = js_KeyValue(&kv, conn_.js(), name.c_str());
  if (s == NATS_NOT_FOUND) {
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = name.c_str();
    kc.History = 1;
    kc.StorageType = conn_.cfg().file_storage ? js_FileStorage : js_MemoryStorage;
    kc.Replicas = conn_.cfg().replicas;
    s = js_CreateKeyValue(&kv, conn_.js(), &kc);
    if (s != NATS_OK) {
      // Another worker made it first, with the same settings or others.
      s = js_KeyValue(&kv, conn_.js(), name.c_str());
    }
  }
  if (s != NATS_OK) {
    return conn_.broker_error("cannot open the rate-limit bucket " + name, s);
  }
  kv_ = bucket_ptr{kv, kvStore_Destroy};
  return kv_;
}

expected<std::int64_t> rate_gate::reserve(const std::string& task, std::int64_t interval_us) {
  auto kv = bucket();
  if (!kv) {
    return kv.error();
  }
  auto failed = [this](error e) {
    clear();  // bound again next time, made again if it is gone
    return e;
  };
  auto key = rate_key(task);
  for (int tries = 0; tries < max_tries; ++tries) {
    kvEntry* got = nullptr;
    auto s = kvStore_Get(&got, kv->get(), key.c_str());
    entry_ptr e{got};
    std::int64_t next = 0;
    std::uint64_t revision = 0;
    if (s == NATS_OK) {
      next = slot_of(e.get());
      revision = kvEntry_Revision(e.get());
    } else if (s != NATS_NOT_FOUND) {
      return failed(conn_.broker_error("cannot read the rate-limit slot of " + task.substr(0, 60), s));
    }
    auto slot = reserve_slot(next, now_epoch_us(), interval_us);
    auto value = std::to_string(slot.next_us);
    auto len = static_cast<int>(value.size());
    s = revision == 0 ? kvStore_Create(nullptr, kv->get(), key.c_str(), value.data(), len)
                      : kvStore_Update(nullptr, kv->get(), key.c_str(), value.data(), len, revision);
    if (s == NATS_OK) {
      return slot.start_us;
    }
    if (!is_conflict(s)) {
      return failed(conn_.broker_error("cannot reserve a rate-limit slot of " + task.substr(0, 60), s));
    }
  }
  return failed(error{errc::broker_unavailable, "cannot reserve a rate-limit slot of " + task.substr(0, 60) + ": " +
                                                    std::to_string(max_tries) + " writes in a row were refused"});
}

}  // namespace trellis::detail
