// HMAC-SHA256 message signing: known answers, refusals of unsigned and badly
// signed bodies, and key files whose content never reaches an error message.

#include "trellis/signing.hpp"

#include <catch2/catch.hpp>
#include <string>

#include "support/files.hpp"
#include "support/temp_dir.hpp"

using namespace trellis;
using namespace trellis::detail;

namespace {

const std::string key_a = "0123456789abcdef0123456789abcdef";  // 32 bytes
const std::string key_b = "fedcba9876543210fedcba9876543210";

}  // namespace

TEST_CASE("A signature is sha256= and the HMAC-SHA256 of the body in lower-case hex", "[unit]") {
  message_signer signer{key_a};
  // Reference value: printf 'hello' | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
  CHECK(*signer.sign("hello") == "sha256=db68b47b63c2397eac785025b1c9c2103ae06c28998234a783b3eb6453d1ad70");
  CHECK(*signer.sign("hello") == *signer.sign("hello"));
  CHECK(*signer.sign("hello") != *signer.sign("hellp"));
  CHECK(*message_signer{key_b}.sign("hello") != *signer.sign("hello"));
  CHECK(*signer.sign(std::string("a\0b", 3)) != *signer.sign("a"));  // the whole body, embedded NULs included
}

TEST_CASE("verify accepts the body's own signature and refuses a missing, wrong or malformed one", "[unit]") {
  message_signer signer{key_a};
  std::string body = "\x85\xa1v\x01";
  auto signature = *signer.sign(body);
  CHECK(signer.verify(body, signature.c_str()));

  auto missing = signer.verify(body, nullptr);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == errc::unsigned_message);
  auto empty = signer.verify(body, "");
  REQUIRE_FALSE(empty);
  CHECK(empty.error().code() == errc::unsigned_message);

  auto altered = signer.verify(body + "x", signature.c_str());
  REQUIRE_FALSE(altered);
  CHECK(altered.error().code() == errc::bad_signature);

  auto other_key = message_signer{key_b}.verify(body, signature.c_str());
  REQUIRE_FALSE(other_key);
  CHECK(other_key.error().code() == errc::bad_signature);

  for (std::string forged :
       {std::string{"sha256="}, signature.substr(0, signature.size() - 1), signature + "0", std::string{"garbage"}}) {
    INFO(forged);
    auto r = signer.verify(body, forged.c_str());
    REQUIRE_FALSE(r);
    CHECK(r.error().code() == errc::bad_signature);
  }
}

TEST_CASE("A key file is read without its trailing newline, and errors never show the key", "[unit]") {
  trellis::test::temp_dir dir;
  auto path = trellis::test::write_file(dir, "key", key_a + "\n");
  auto from_file = message_signer::from_file(path);
  REQUIRE(from_file);
  CHECK(*from_file->sign("x") == *message_signer{key_a}.sign("x"));

  auto short_key = trellis::test::write_file(dir, "short", "tooshortsecret\n");
  auto refused = message_signer::from_file(short_key);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().code() == errc::invalid_config);
  CHECK(refused.error().message().find(short_key) != std::string::npos);
  CHECK(refused.error().message().find("tooshortsecret") == std::string::npos);

  auto missing = message_signer::from_file(dir.file("absent"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code() == errc::invalid_config);
  CHECK(missing.error().message().find("cannot be read") != std::string::npos);

  CHECK_THROWS_AS(message_signer{"short"}, setup_error);
}
