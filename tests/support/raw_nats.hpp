#pragma once

/// @file
/// A bare NATS client for tests that play an attacker: it publishes any
/// bytes with any headers on any subject, bypassing everything the
/// transport would check or add. A subject a JetStream stream captures is
/// published through JetStream, so `publish` returns once the broker
/// stored the message; any other subject is a core publish plus a flush.

#include <nats/nats.h>

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace trellis::test {

class raw_nats {
 public:
  explicit raw_nats(const std::string& url) {
    natsOptions* opts = nullptr;
    REQUIRE(natsOptions_Create(&opts) == NATS_OK);
    natsOptions_SetURL(opts, url.c_str());
    natsOptions_SetName(opts, "raw-test-client");
    auto s = natsConnection_Connect(&conn_, opts);
    natsOptions_Destroy(opts);
    REQUIRE(s == NATS_OK);
    REQUIRE(natsConnection_JetStream(&js_, conn_, nullptr) == NATS_OK);
  }
  raw_nats(const raw_nats&) = delete;
  raw_nats& operator=(const raw_nats&) = delete;
  ~raw_nats() {
    natsSubscription_Destroy(listener_);
    jsCtx_Destroy(js_);
    natsConnection_Destroy(conn_);
  }

  using headers = std::vector<std::pair<std::string, std::string>>;

  /// Publishes `body` with `hdrs` on `subject` to a stream; returns the
  /// broker's status (NATS_OK once stored). A `Nats-Msg-Id` header, if
  /// given, is deduplicated by the broker as any other.
  natsStatus publish_stored(const std::string& subject, const std::string& body, const headers& hdrs = {}) {
    natsMsg* msg = make(subject, body, hdrs);
    if (msg == nullptr) {
      return NATS_ERR;
    }
    jsPubAck* ack = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    auto s = js_PublishMsg(&ack, js_, msg, nullptr, &jerr);
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(msg);
    return s;
  }

  /// A core publish (no stream needs to capture it) plus a flush; with a
  /// `reply` subject, as a request whose answer goes there.
  natsStatus publish_core(const std::string& subject, const std::string& body, const headers& hdrs = {},
                          const std::string& reply = "") {
    natsMsg* msg = make(subject, body, hdrs, reply);
    if (msg == nullptr) {
      return NATS_ERR;
    }
    auto s = natsConnection_PublishMsg(conn_, msg);
    natsMsg_Destroy(msg);
    return s == NATS_OK ? natsConnection_FlushTimeout(conn_, 5000) : s;
  }

  /// Removes every message of `stream` (a test removing what a process
  /// stored, as an operator or an expiry would).
  natsStatus purge_stream(const std::string& stream) {
    jsErrCode jerr = static_cast<jsErrCode>(0);
    return js_PurgeStream(js_, stream.c_str(), nullptr, &jerr);
  }

  /// Counts from now on the messages arriving on `subject` (a wildcard
  /// such as `_INBOX.fuzz.>` catches the answers to every request given a
  /// reply under it); `heard()` reads the count. One subject per client.
  /// A synchronous subscription that is never read: the library counts what
  /// arrives (pending, and dropped past its limit) without a callback thread
  /// that could outlive this object.
  void listen(const std::string& subject) {
    REQUIRE(listener_ == nullptr);
    REQUIRE(natsConnection_SubscribeSync(&listener_, conn_, subject.c_str()) == NATS_OK);
    REQUIRE(natsConnection_FlushTimeout(conn_, 5000) == NATS_OK);
  }

  /// How many messages arrived on the `listen` subject so far.
  std::size_t heard() const {
    int pending = 0;
    std::int64_t delivered = 0;
    std::int64_t dropped = 0;
    if (listener_ == nullptr ||
        natsSubscription_GetStats(listener_, &pending, nullptr, nullptr, nullptr, &delivered, &dropped) != NATS_OK) {
      return 0;
    }
    return static_cast<std::size_t>(pending) + static_cast<std::size_t>(delivered + dropped);
  }

 private:
  natsMsg* make(const std::string& subject, const std::string& body, const headers& hdrs,
                const std::string& reply = "") {
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), reply.empty() ? nullptr : reply.c_str(), body.data(),
                       static_cast<int>(body.size())) != NATS_OK) {
      return nullptr;
    }
    for (const auto& [name, value] : hdrs) {
      if (natsMsgHeader_Add(msg, name.c_str(), value.c_str()) != NATS_OK) {
        natsMsg_Destroy(msg);
        return nullptr;
      }
    }
    return msg;
  }

  natsConnection* conn_ = nullptr;
  jsCtx* js_ = nullptr;
  natsSubscription* listener_ = nullptr;
};

}  // namespace trellis::test
