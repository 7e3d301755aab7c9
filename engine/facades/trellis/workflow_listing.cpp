#include "trellis/workflow_listing.hpp"

#include <string>

namespace trellis::detail {

expected<control_request> list_request(const workflow_query& query) {
  if (query.limit < 1 || query.limit > static_cast<std::size_t>(max_list_page)) {
    return error{errc::invalid_config,
                 "limit " + std::to_string(query.limit) + " is not from 1 to " + std::to_string(max_list_page)};
  }
  if (query.cursor.size() > max_cursor_bytes) {
    return error{errc::invalid_config, "a cursor is at most " + std::to_string(max_cursor_bytes) + " bytes"};
  }
  control_request request;
  request.op = control_op::list;
  request.limit = static_cast<std::int64_t>(query.limit);
  if (query.state) {
    request.state = std::string{to_string(*query.state)};
  }
  request.cursor = query.cursor;
  return request;
}

}  // namespace trellis::detail
