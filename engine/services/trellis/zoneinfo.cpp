#include "trellis/zoneinfo.hpp"

#include <cstdlib>
#include <fstream>
#include <iterator>

namespace trellis::detail {

namespace {

constexpr std::size_t max_zone_name = 64;
constexpr std::streamsize max_tzif_bytes = 1 << 20;

bool valid_zone_name(std::string_view name) {
  if (name.empty() || name.size() > max_zone_name || name.front() == '/' || name.back() == '/') return false;
  if (name.find("..") != std::string_view::npos || name.find("//") != std::string_view::npos) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

expected<time_zone> load_time_zone(std::string_view name) {
  if (name == "UTC" || name == "Etc/UTC") return time_zone::utc();
  if (!valid_zone_name(name))
    return error(errc::invalid_config, "time zone '" + std::string(name.substr(0, max_zone_name)) + "': not a zone name");
  const char* dir = std::getenv("TZDIR");
  std::string path = std::string(dir && *dir ? dir : "/usr/share/zoneinfo") + "/" + std::string(name);
  std::ifstream in(path, std::ios::binary);
  if (!in) return error(errc::invalid_config, "time zone '" + std::string(name) + "': unknown (no zoneinfo file)");
  std::string bytes;
  bytes.resize(static_cast<std::size_t>(max_tzif_bytes) + 1);
  in.read(bytes.data(), max_tzif_bytes + 1);
  auto got = in.gcount();
  if (got > max_tzif_bytes) return error(errc::invalid_config, "time zone '" + std::string(name) + "': file too large");
  bytes.resize(static_cast<std::size_t>(got));
  return time_zone::from_tzif(std::string(name), bytes);
}

}  // namespace trellis::detail
