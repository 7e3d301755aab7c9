#pragma once

/// @file
/// Merges the Prometheus text expositions of several processes into one
/// (`trellis metrics --broker`, docs/cluster.md "Control"). Every sample gets
/// one more label naming its source (`process="<name>"`), and the samples of
/// one metric family from every source are printed together under a single
/// `# HELP` and `# TYPE`, so that the result is itself valid exposition text:
/// Prometheus refuses a family declared twice or split in two.

#include "trellis/error.hpp"
#include "trellis/metrics_format.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace trellis::detail {

class prometheus_merge {
 public:
  /// Adds every sample of `text` with `label="value"` put first among its
  /// labels (the value escaped as the format requires). A sample belongs to
  /// the family of the `# TYPE`/`# HELP` line before it when its name is the
  /// family's or the family's plus `_bucket`, `_sum` or `_count`; otherwise
  /// to a family of its own name. Errors (`malformed_envelope`, naming the
  /// line): a sample that is not `name{labels} value` or `name value`, a
  /// sample that already has `label`, a family whose TYPE differs from the
  /// one an earlier text declared. Nothing of a refused text is added.
  expected<void> add(std::string_view text, const std::string& label, const std::string& value);

  /// The merged exposition: families in the order they first appeared, each
  /// with the first HELP and TYPE seen, then its samples in the order added.
  std::string text() const;

 private:
  struct family {
    std::string name;
    std::optional<std::string> help;
    std::optional<std::string> type;
    std::vector<std::string> samples;
  };
  static family& find(std::vector<family>& families, const std::string& name);
  std::vector<family> families_;
};

/// `text` (Prometheus text as `metrics::prometheus_text` and
/// `prometheus_merge::text` write it) in `format`. For OpenMetrics a
/// counter family is declared without its `_total` suffix (its samples
/// keep it), and the text ends with `# EOF`; the samples are the same.
std::string in_format(std::string text, metrics_format format);

/// `raw` escaped as a Prometheus label value (backslash, double quote and
/// newline), without the quotes.
std::string escape_label_value(std::string_view raw);

}  // namespace trellis::detail
