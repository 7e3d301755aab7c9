#pragma once

/// @file
/// Internal to the NATS transport (transport/nats_*.cpp, cluster_bus.cpp):
/// RAII for nats.c handles and the few values every part of it shares. Only
/// the files of this folder that speak nats.c include it; no public header
/// does, so no NATS type leaks beyond them.

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <memory>

namespace trellis::detail {

// ---------------------------------------------------------------------------
// RAII for every nats.c handle: a unique_ptr whose deleter is the _Destroy.

template <class T, void (*Destroy)(T*)>
struct nats_deleter {
  void operator()(T* p) const noexcept {
    if (p != nullptr) {
      Destroy(p);
    }
  }
};

template <class T, void (*Destroy)(T*)>
using nats_handle = std::unique_ptr<T, nats_deleter<T, Destroy>>;

using options_ptr = nats_handle<natsOptions, natsOptions_Destroy>;
using connection_ptr = nats_handle<natsConnection, natsConnection_Destroy>;
using js_ptr = nats_handle<jsCtx, jsCtx_Destroy>;
using subscription_ptr = nats_handle<natsSubscription, natsSubscription_Destroy>;
using message_ptr = nats_handle<natsMsg, natsMsg_Destroy>;
using stream_info_ptr = nats_handle<jsStreamInfo, jsStreamInfo_Destroy>;
using consumer_info_ptr = nats_handle<jsConsumerInfo, jsConsumerInfo_Destroy>;
using metadata_ptr = nats_handle<jsMsgMetaData, jsMsgMetaData_Destroy>;

/// A natsMsgList filled by a fetch; destroys whatever is still in it.
struct message_list {
  natsMsgList list{nullptr, 0};
  message_list() = default;
  ~message_list() { natsMsgList_Destroy(&list); }
  message_list(const message_list&) = delete;
  message_list& operator=(const message_list&) = delete;
};

// Longest a fetch blocks in nats.c before we look at the closed signal
// again: close() cannot interrupt a natsSubscription_Fetch, so this bounds
// its wake-up.
constexpr std::chrono::milliseconds max_fetch_slice{100};
// Pacing of the event and lost-task threads after a broker error, so a dead
// connection does not spin a core. Interrupted by close().
constexpr std::chrono::milliseconds event_retry_pause{200};

inline std::int64_t to_nanos(std::chrono::milliseconds d) { return static_cast<std::int64_t>(d.count()) * 1'000'000; }

inline bool is_no_message(natsStatus s) { return s == NATS_TIMEOUT || s == NATS_NOT_FOUND; }

/// Lets the running callbacks of `sub` finish and stops new ones (bounded by
/// `timeout`): the objects its callbacks use may go after this.
inline void drain_subscription(subscription_ptr& sub, std::chrono::milliseconds timeout) {
  if (sub && natsSubscription_Drain(sub.get()) == NATS_OK) {
    natsSubscription_WaitForDrainCompletion(sub.get(), timeout.count());
  }
}

}  // namespace trellis::detail
