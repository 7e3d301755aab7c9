#include "trellis/value.hpp"

#include "trellis/detail/value_codec.hpp"

#include "support/values.hpp"

#include <catch2/catch.hpp>
#include <msgpack.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

using trellis::binary;
using trellis::errc;
using trellis::usage_error;
using trellis::value;
using trellis::detail::pack_to_string;
using trellis::detail::unpack_from_string;
using trellis::detail::value_from_msgpack;
using trellis::test::nested;
using trellis::test::raw_msgpack;

namespace {

constexpr std::size_t no_byte_limit = std::numeric_limits<std::size_t>::max();

/// One value of every kind, nested, as the round-trip tests use it.
value every_kind() {
  value::map inner{{"nil", nullptr},
                   {"t", true},
                   {"f", false},
                   {"small", 7},
                   {"negative", -33},
                   {"min", std::numeric_limits<std::int64_t>::min()},
                   {"max", std::numeric_limits<std::int64_t>::max()},
                   {"pi", 3.14159},
                   {"negative_zero", -0.0},
                   {"text", "héllo \"world\"\n"},
                   {"empty", ""},
                   {"bytes", binary{{0x00, 0xff, 0x10}}},
                   {"empty_array", value::array{}},
                   {"empty_map", value::map{}}};
  return value::array{value{inner}, value::array{1, "two", value::array{3.5, value::map{{"deep", nullptr}}}}};
}

}  // namespace

TEST_CASE("a value reports the kind it was constructed with", "[unit][value]") {
  CHECK(value{}.type() == value::kind::nil);
  CHECK(value{nullptr}.is_nil());
  CHECK(value{true}.is_bool());
  CHECK(value{42}.is_integer());
  CHECK(value{std::uint8_t{7}}.is_integer());
  CHECK(value{2.5}.is_float());
  CHECK(value{2.5f}.is_float());
  CHECK(value{"text"}.is_string());
  CHECK(value{std::string{"text"}}.is_string());
  CHECK(value{std::string_view{"text"}}.is_string());
  CHECK(value{binary{{1, 2}}}.is_binary());
  CHECK(value{value::array{}}.is_array());
  CHECK(value{value::map{}}.is_map());
  CHECK(value{std::vector<int>{1, 2}}.is_array());
}

TEST_CASE("kind names match the wire vocabulary", "[unit][value]") {
  CHECK(std::string{to_string(value::kind::nil)} == "nil");
  CHECK(std::string{to_string(value::kind::boolean)} == "bool");
  CHECK(std::string{to_string(value::kind::integer)} == "int");
  CHECK(std::string{to_string(value::kind::floating)} == "float");
  CHECK(std::string{to_string(value::kind::string)} == "str");
  CHECK(std::string{to_string(value::kind::binary)} == "bin");
  CHECK(std::string{to_string(value::kind::array)} == "array");
  CHECK(std::string{to_string(value::kind::map)} == "map");
}

TEST_CASE("accessors return the held value and name both kinds on a mismatch", "[unit][value]") {
  CHECK(value{true}.as_bool());
  CHECK(value{-5}.as_int() == -5);
  CHECK(value{1.5}.as_float() == 1.5);
  CHECK(value{"abc"}.as_string() == "abc");
  CHECK(value{binary{{9}}}.as_binary().bytes == std::vector<std::uint8_t>{9});
  CHECK(value{value::array{1, 2}}.as_array().size() == 2);
  CHECK(value{value::map{{"k", 1}}}.as_map().at("k") == value{1});

  CHECK_THROWS_WITH(value{"abc"}.as_int(), "expected int, got str");
  CHECK_THROWS_WITH(value{1}.as_string(), "expected str, got int");
  CHECK_THROWS_WITH(value{}.as_bool(), "expected bool, got nil");
  CHECK_THROWS_WITH(value{1.5}.as_int(), "expected int, got float");
  CHECK_THROWS_WITH(value{value::map{}}.as_array(), "expected array, got map");
  CHECK_THROWS_WITH(value{value::array{}}.as_map(), "expected map, got array");
  CHECK_THROWS_WITH(value{"x"}.as_binary(), "expected bin, got str");
  CHECK_THROWS_AS(value{"x"}.as_float(), usage_error);
}

TEST_CASE("mutable accessors change the value in place", "[unit][value]") {
  value a{value::array{}};
  a.as_array().emplace_back(1);
  CHECK(a == value{value::array{1}});
  value m{value::map{}};
  m.as_map()["k"] = "v";
  CHECK(m == value{value::map{{"k", "v"}}});
}

TEST_CASE("integers convert to double but doubles never convert to integers", "[unit][value]") {
  CHECK(value{3}.as_float() == 3.0);
  CHECK(value{3}.as<double>() == 3.0);
  CHECK(value{3}.is<double>());
  CHECK(value{3}.is<float>());
  CHECK_FALSE(value{3.0}.is<int>());
  CHECK_THROWS_AS(value{3.0}.as<int>(), usage_error);
}

TEST_CASE("as<T> and is<T> agree for scalars", "[unit][value]") {
  CHECK(value{"s"}.as<std::string>() == "s");
  CHECK(value{"s"}.is<std::string>());
  CHECK_FALSE(value{"s"}.is<int>());
  CHECK(value{true}.as<bool>());
  CHECK_FALSE(value{1}.is<bool>());
  CHECK(value{binary{{1}}}.as<binary>() == binary{{1}});
  CHECK(value{7}.as<value>() == value{7});
  CHECK(value{2.5}.as<float>() == 2.5f);
  CHECK_THROWS_WITH(value{"s"}.as<int>(), Catch::Contains("cannot convert str"));
}

TEST_CASE("integer conversions check the target type's range", "[unit][value]") {
  SECTION("short") {
    CHECK(value{32767}.is<short>());
    CHECK(value{-32768}.as<short>() == -32768);
    CHECK_FALSE(value{32768}.is<short>());
    CHECK_THROWS_AS(value{32768}.as<short>(), usage_error);
  }
  SECTION("int") {
    CHECK(value{std::numeric_limits<int>::max()}.as<int>() == std::numeric_limits<int>::max());
    CHECK_FALSE(value{std::int64_t{5'000'000'000}}.is<int>());
    CHECK_FALSE(value{std::int64_t{-5'000'000'000}}.is<int>());
  }
  SECTION("unsigned types refuse negatives") {
    CHECK_FALSE(value{-1}.is<unsigned>());
    CHECK_FALSE(value{-1}.is<unsigned long long>());
    CHECK_THROWS_AS(value{-1}.as<unsigned long>(), usage_error);
    CHECK(value{std::numeric_limits<std::int64_t>::max()}.as<unsigned long long>() ==
          static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max()));
    CHECK(value{std::uint32_t{4'000'000'000}}.as<unsigned>() == 4'000'000'000u);
  }
  SECTION("64-bit signed") {
    CHECK(value{std::numeric_limits<std::int64_t>::min()}.as<long long>() == std::numeric_limits<std::int64_t>::min());
  }
}

TEST_CASE("vectors convert to arrays and back, element by element", "[unit][value]") {
  value v{std::vector<int>{1, 2, 3}};
  CHECK(v == value{value::array{1, 2, 3}});
  CHECK(v.as<std::vector<int>>() == std::vector<int>{1, 2, 3});
  CHECK(v.is<std::vector<double>>());
  CHECK(v.as<std::vector<double>>() == std::vector<double>{1.0, 2.0, 3.0});
  CHECK_FALSE(v.is<std::vector<std::string>>());

  value strings{std::vector<std::string>{"a", "b"}};
  CHECK(strings.as<std::vector<std::string>>() == std::vector<std::string>{"a", "b"});

  value mixed{value::array{1, "two"}};
  CHECK_FALSE(mixed.is<std::vector<int>>());
  CHECK_THROWS_AS(mixed.as<std::vector<int>>(), usage_error);
  CHECK(mixed.is<std::vector<value>>());

  value too_big{value::array{1, 70000}};
  CHECK_FALSE(too_big.is<std::vector<short>>());

  value nested_vec{std::vector<std::vector<int>>{{1}, {2, 3}}};
  CHECK(nested_vec.as<std::vector<std::vector<int>>>() == std::vector<std::vector<int>>{{1}, {2, 3}});

  CHECK_FALSE(value{1}.is<std::vector<int>>());
}

TEST_CASE("to_json prints compact JSON", "[unit][value][json]") {
  CHECK(to_json(value{}) == "null");
  CHECK(to_json(value{true}) == "true");
  CHECK(to_json(value{-12}) == "-12");
  CHECK(to_json(value{"a\"b\\c\n\x01"}) == R"("a\"b\\c\n\u0001")");
  CHECK(to_json(value{value::array{1, "x", nullptr}}) == R"([1,"x",null])");
  CHECK(to_json(value{value::map{{"b", 2}, {"a", value::array{}}}}) == R"({"a":[],"b":2})");
  CHECK(to_json(value{binary{{0x00, 0xab, 0xff}}}) == R"({"$bin":"00abff"})");
  CHECK(to_json(value{std::numeric_limits<std::int64_t>::min()}) == "-9223372036854775808");
}

TEST_CASE("to_json keeps doubles recognisable as doubles", "[unit][value][json]") {
  CHECK(to_json(value{1.0}) == "1.0");
  CHECK(to_json(value{-0.0}) == "-0.0");
  CHECK(to_json(value{0.1}) == "0.1");
  CHECK(to_json(value{1e300}) == "1e+300");
  CHECK(to_json(value{1.5e-7}) == "1.5e-07");
  // JSON has no NaN or infinity.
  CHECK(to_json(value{std::nan("")}) == "\"NaN\"");
  CHECK(to_json(value{std::numeric_limits<double>::infinity()}) == "\"Infinity\"");
  CHECK(to_json(value{-std::numeric_limits<double>::infinity()}) == "\"-Infinity\"");
}

TEST_CASE("to_json never emits invalid UTF-8", "[unit][value][json]") {
  CHECK(to_json(value{"h\xc3\xa9llo"}) == "\"h\xc3\xa9llo\"");
  CHECK(to_json(value{"\xe2\x82\xac"}) == "\"\xe2\x82\xac\"");
  CHECK(to_json(value{"bad\xff"}) == R"("bad\ufffd")");
  CHECK(to_json(value{"\xc3"}) == R"("\ufffd")");
  CHECK(to_json(value{"\xed\xa0\x80"}) == R"("\ufffd\ufffd\ufffd")");  // a UTF-16 surrogate
  auto parsed = trellis::value_from_json(to_json(value{"bad\xff\xfe"}));
  REQUIRE(parsed);
  CHECK(parsed->as_string() == "bad\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("JSON round-trips every kind", "[unit][value][json]") {
  value v = every_kind();
  auto parsed = trellis::value_from_json(to_json(v));
  REQUIRE(parsed);
  CHECK(*parsed == v);
}

TEST_CASE("value_from_json keeps integers and doubles apart", "[unit][value][json]") {
  auto v = trellis::value_from_json(R"({"i": 3, "d": 3.0, "e": 1e2, "n": -9223372036854775808,
                                        "u": 9223372036854775807})");
  REQUIRE(v);
  const auto& m = v->as_map();
  CHECK(m.at("i").is_integer());
  CHECK(m.at("d").is_float());
  CHECK(m.at("e").is_float());
  CHECK(m.at("n").as_int() == std::numeric_limits<std::int64_t>::min());
  CHECK(m.at("u").as_int() == std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("value_from_json reads $bin objects back as binary only when they are hex", "[unit][value][json]") {
  auto bin = trellis::value_from_json(R"({"$bin": "00FFa0"})");
  REQUIRE(bin);
  CHECK(*bin == value{binary{{0x00, 0xff, 0xa0}}});
  auto not_hex = trellis::value_from_json(R"({"$bin": "zz"})");
  REQUIRE(not_hex);
  CHECK(not_hex->is_map());
  auto two_keys = trellis::value_from_json(R"({"$bin": "00", "x": 1})");
  REQUIRE(two_keys);
  CHECK(two_keys->is_map());
}

TEST_CASE("value_from_json rejects what a value cannot hold, naming the problem", "[unit][value][json]") {
  SECTION("unsigned integers above INT64_MAX") {
    auto v = trellis::value_from_json(R"({"a": [1, 18446744073709551615]})");
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == errc::invalid_workflow);
    CHECK_THAT(v.error().message(), Catch::Contains("18446744073709551615") && Catch::Contains("$.a[1]"));
  }
  SECTION("integers beyond 64 bits") {
    auto v = trellis::value_from_json("[-99999999999999999999]");
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == errc::invalid_workflow);
    CHECK_THAT(v.error().message(), Catch::Contains("-99999999999999999999"));
  }
  SECTION("syntax errors with their position") {
    auto v = trellis::value_from_json("{\"a\": 1,\n \"b\" 2}");
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == errc::invalid_workflow);
    CHECK_THAT(v.error().message(), Catch::Contains("line 2"));
  }
  SECTION("trailing garbage") {
    auto v = trellis::value_from_json("[1] x");
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == errc::invalid_workflow);
  }
  SECTION("empty input") {
    auto v = trellis::value_from_json("");
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == errc::invalid_workflow);
  }
  SECTION("duplicate keys") {
    auto v = trellis::value_from_json(R"({"x": {"k": 1, "k": 2}})");
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == errc::invalid_workflow);
    CHECK_THAT(v.error().message(), Catch::Contains("duplicate key \"k\"") && Catch::Contains("$.x"));
  }
  SECTION("nesting deeper than 64 levels") {
    REQUIRE(trellis::value_from_json(std::string(64, '[') + std::string(64, ']')));
    auto v = trellis::value_from_json(std::string(65, '[') + std::string(65, ']'));
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == errc::invalid_workflow);
    CHECK_THAT(v.error().message(), Catch::Contains("nesting deeper than 64"));
  }
}

TEST_CASE("msgpack round-trips every kind, nested", "[unit][value][msgpack]") {
  value v = every_kind();
  auto bytes = pack_to_string(v);
  auto back = unpack_from_string(bytes, no_byte_limit, 64);
  REQUIRE(back);
  CHECK(*back == v);

  for (const auto& scalar :
       {value{}, value{false}, value{0}, value{-1}, value{127}, value{128}, value{-32}, value{-33}, value{65536},
        value{std::numeric_limits<std::int64_t>::max()}, value{std::numeric_limits<std::int64_t>::min()}, value{0.5},
        value{""}, value{std::string(300, 'x')}, value{binary{}}, value{binary{std::vector<std::uint8_t>(70000, 1)}}}) {
    auto round = unpack_from_string(pack_to_string(scalar), no_byte_limit, 0);
    REQUIRE(round);
    CHECK(*round == scalar);
  }
}

TEST_CASE("integral doubles stay doubles across msgpack, sign of zero included", "[unit][value][msgpack]") {
  for (double d : {1.0, 0.0, -0.0, -3.0, 1e18, 1e300}) {
    CAPTURE(d);
    auto back = unpack_from_string(pack_to_string(value{d}), no_byte_limit, 0);
    REQUIRE(back);
    REQUIRE(back->is_float());
    CHECK(back->as_float() == d);
    CHECK(std::signbit(back->as_float()) == std::signbit(d));
  }
}

TEST_CASE("NaN and infinities survive msgpack bit for bit", "[unit][value][msgpack]") {
  auto nan = unpack_from_string(pack_to_string(value{std::nan("")}), no_byte_limit, 0);
  REQUIRE(nan);
  CHECK(std::isnan(nan->as_float()));
  auto inf = unpack_from_string(pack_to_string(value{-std::numeric_limits<double>::infinity()}), no_byte_limit, 0);
  REQUIRE(inf);
  CHECK(inf->as_float() == -std::numeric_limits<double>::infinity());
}

TEST_CASE("msgpack encodings are canonical: smallest integers, float64 doubles", "[unit][value][msgpack]") {
  CHECK(pack_to_string(value{1}) == std::string{"\x01"});
  CHECK(pack_to_string(value{-1}) == std::string{"\xff"});
  CHECK(pack_to_string(value{200}).size() == 2);
  CHECK(pack_to_string(value{1.0}).size() == 9);
  CHECK(pack_to_string(value{2.0f}).size() == 9);
  // A non-canonical encoding of 1 (uint64) reads as the same value.
  auto wide = raw_msgpack([](auto& pk) { pk.pack_fix_uint64(1); });
  REQUIRE(wide.size() == 9);
  auto v = unpack_from_string(wide, no_byte_limit, 0);
  REQUIRE(v);
  CHECK(*v == value{1});
  CHECK(pack_to_string(*v) == std::string{"\x01"});
}

TEST_CASE("the sbuffer and string packers write the same bytes", "[unit][value][msgpack]") {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk{buf};
  trellis::detail::pack_value(pk, every_kind());
  CHECK(std::string(buf.data(), buf.size()) == pack_to_string(every_kind()));
}

TEST_CASE("float32 reads as a double", "[unit][value][msgpack]") {
  auto bytes = raw_msgpack([](auto& pk) { pk.pack_float(1.5f); });
  REQUIRE(bytes.size() == 5);
  auto v = unpack_from_string(bytes, no_byte_limit, 0);
  REQUIRE(v);
  CHECK(*v == value{1.5});
}

TEST_CASE("value_from_msgpack is strict about what a value cannot hold", "[unit][value][msgpack]") {
  auto reject = [](const std::string& bytes, errc code, const std::string& text) {
    auto v = unpack_from_string(bytes, no_byte_limit, 8);
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == code);
    CHECK_THAT(v.error().message(), Catch::Contains(text));
  };
  SECTION("unsigned integers above INT64_MAX") {
    reject(raw_msgpack([](auto& pk) { pk.pack_uint64(std::uint64_t{1} << 63); }), errc::malformed_envelope,
           "9223372036854775808");
    CHECK(unpack_from_string(raw_msgpack([](auto& pk) { pk.pack_uint64((std::uint64_t{1} << 63) - 1); }), no_byte_limit,
                             0));
  }
  SECTION("ext types") {
    reject(raw_msgpack([](auto& pk) {
             pk.pack_array(1);
             pk.pack_ext(1, 5);
             pk.pack_ext_body("x", 1);
           }),
           errc::malformed_envelope, "ext type 5");
  }
  SECTION("non-string map keys") {
    reject(raw_msgpack([](auto& pk) {
             pk.pack_map(1);
             pk.pack_int(1);
             pk.pack_nil();
           }),
           errc::malformed_envelope, "map key must be str, got int");
  }
  SECTION("duplicate map keys") {
    reject(raw_msgpack([](auto& pk) {
             pk.pack_map(2);
             pk.pack_str(1);
             pk.pack_str_body("k", 1);
             pk.pack_int(1);
             pk.pack_str(1);
             pk.pack_str_body("k", 1);
             pk.pack_int(2);
           }),
           errc::malformed_envelope, "duplicate map key 'k'");
  }
  SECTION("truncated data") {
    auto bytes = pack_to_string(every_kind());
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      auto v = unpack_from_string(std::string_view{bytes}.substr(0, cut), no_byte_limit, 8);
      REQUIRE_FALSE(v);
      CHECK(v.error().code() == errc::malformed_envelope);
    }
  }
  SECTION("trailing bytes") { reject(std::string{"\x01\x02"}, errc::malformed_envelope, "1 trailing bytes"); }
  SECTION("the reserved byte 0xc1") { reject(std::string{"\x91\xc1"}, errc::malformed_envelope, "0xc1"); }
  SECTION("a few bytes claiming a four-billion element array") {
    reject(std::string{"\xdd\xff\xff\xff\xff\x00"}, errc::malformed_envelope, "truncated");
    reject(std::string{"\xdf\xff\xff\xff\xff"}, errc::malformed_envelope, "truncated");
    reject(std::string{"\xdb\xff\xff\xff\xff"}, errc::malformed_envelope, "truncated");
  }
  SECTION("more bytes than the limit") {
    auto v = unpack_from_string(pack_to_string(value{"0123456789"}), 10, 8);
    REQUIRE_FALSE(v);
    CHECK(v.error().code() == errc::payload_too_large);
  }
}

TEST_CASE("nesting up to the depth limit reads, one level more is payload_too_large", "[unit][value][msgpack]") {
  for (std::size_t limit : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{64}}) {
    CAPTURE(limit);
    auto ok = unpack_from_string(pack_to_string(nested(limit)), no_byte_limit, limit);
    REQUIRE(ok);
    CHECK(*ok == nested(limit));
    auto deep = unpack_from_string(pack_to_string(nested(limit + 1)), no_byte_limit, limit);
    REQUIRE_FALSE(deep);
    CHECK(deep.error().code() == errc::payload_too_large);
  }
}

TEST_CASE("value_from_msgpack enforces its own depth limit on an unpacked object", "[unit][value][msgpack]") {
  auto bytes = pack_to_string(value::map{{"a", value::array{value::array{}}}});
  auto handle = msgpack::unpack(bytes.data(), bytes.size());
  CHECK(value_from_msgpack(handle.get(), 3));
  auto shallow = value_from_msgpack(handle.get(), 2);
  REQUIRE_FALSE(shallow);
  CHECK(shallow.error().code() == errc::payload_too_large);
  CHECK_THAT(shallow.error().message(), Catch::Contains("deeper than 2 levels"));
}

TEST_CASE("a million nested array headers are refused without recursion or allocation", "[unit][value][msgpack]") {
  std::string bytes(1'000'000, '\x91');
  auto v = unpack_from_string(bytes, no_byte_limit, 64);
  REQUIRE_FALSE(v);
  CHECK(v.error().code() == errc::payload_too_large);
}

TEST_CASE("packed_size counts exactly the bytes pack_to_string writes, at every width of every kind", "[unit][value]") {
  std::vector<value> samples{value{},
                             true,
                             0,
                             127,
                             128,
                             -32,
                             -33,
                             255,
                             65'535,
                             65'536,
                             -2'147'483'648LL,
                             std::numeric_limits<std::int64_t>::max(),
                             std::numeric_limits<std::int64_t>::min(),
                             1.5,
                             std::string(31, 's'),
                             std::string(32, 's'),
                             std::string(256, 's'),
                             std::string(70'000, 's'),
                             binary{std::vector<std::uint8_t>(300, 7)},
                             binary{std::vector<std::uint8_t>(70'000, 7)},
                             value::array(15, 1),
                             value::array(16, 1),
                             value::array(70'000, 1)};
  value::map small;
  value::map large;
  for (int i = 0; i < 20; ++i) {
    if (i < 5) {
      small["k" + std::to_string(i)] = value::array{i, "x"};
    }
    large["k" + std::to_string(i)] = value::array{i, "x"};
  }
  samples.push_back(small);
  samples.push_back(large);
  samples.push_back(value::map{{"nested", value::array{value::map{{"a", 1}}, samples}}});
  for (const auto& v : samples) {
    INFO(trellis::to_json(v).substr(0, 80));
    CHECK(trellis::detail::packed_size(v) == pack_to_string(v).size());
  }
}
