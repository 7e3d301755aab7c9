#include "trellis/transport/nats_messages.hpp"

#include "trellis/transport/nats_uploads.hpp"

#include "trellis/signing.hpp"
#include "trellis/transport/pack_codec.hpp"

#include <string_view>

namespace trellis::detail {

natsStatus make_message(message_ptr& out, const std::string& subject, const std::string& body,
                        const message_signer* signer, const std::string* upload) {
  natsMsg* raw = nullptr;
  auto s = upload != nullptr
               ? natsMsg_Create(&raw, subject.c_str(), nullptr, nullptr, 0)
               : natsMsg_Create(&raw, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
  out.reset(raw);
  if (s == NATS_OK && upload != nullptr) {
    s = natsMsgHeader_Set(out.get(), upload_header, upload->c_str());
  }
  if (s == NATS_OK && signer != nullptr) {
    // Over the whole body, a stub's too: the receiver checks what it read.
    // A signature OpenSSL could not compute fails the send like a full
    // buffer would: the caller retries it.
    auto signature = signer->sign(body);
    s = signature ? natsMsgHeader_Set(out.get(), signature_header, signature->c_str()) : NATS_NO_MEMORY;
  }
  return s;
}

natsStatus publish_one_async(jsCtx* js, const std::string& subject, const std::string& body,
                             const message_signer* signer, const char* pack_header, const std::string* pack_count,
                             jsPubOptions* po, const std::string* upload) {
  if (signer == nullptr && pack_count == nullptr && upload == nullptr) {
    return js_PublishAsync(js, subject.c_str(), body.data(), static_cast<int>(body.size()), po);
  }
  message_ptr msg;
  auto s = make_message(msg, subject, body, signer, upload);
  if (s == NATS_OK && pack_count != nullptr) {
    s = natsMsgHeader_Set(msg.get(), pack_header, pack_count->c_str());
  }
  if (s == NATS_OK) {
    natsMsg* raw = msg.release();
    s = js_PublishMsgAsync(js, &raw, po);
    msg.reset(raw);  // null once nats.c took the message
  }
  return s;
}

std::optional<error> refusal_of(const message_signer* signer, natsMsg* m, const std::string* body) {
  if (signer == nullptr) {
    return std::nullopt;
  }
  const char* signature = nullptr;
  if (natsMsgHeader_Get(m, signature_header, &signature) != NATS_OK) {
    signature = nullptr;
  }
  auto ok = body != nullptr
                ? signer->verify(*body, signature)
                : signer->verify({natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))}, signature);
  if (ok) {
    return std::nullopt;
  }
  return ok.error();
}

std::optional<expected<std::vector<std::string>>> unpack_message(natsMsg* m) {
  std::string_view body{natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))};
  for (const char* header : {event_pack_header, task_pack_header}) {
    const char* text = nullptr;
    if (natsMsgHeader_Get(m, header, &text) == NATS_OK && text != nullptr) {
      auto count = parse_pack_count(text, body.size());
      if (!count) {
        return expected<std::vector<std::string>>{count.error()};
      }
      return unpack_frames(body, *count);
    }
  }
  return std::nullopt;
}

}  // namespace trellis::detail
