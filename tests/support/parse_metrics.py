"""Parses a metrics exposition with the Prometheus client's own parsers.

Usage: parse_metrics.py prometheus|openmetrics FILE

Prints one line, `families N samples M`, and exits 0 when the parser
accepts the whole text; prints the parser's error on stderr and exits 1
otherwise. Run with Debian's /usr/bin/python3 (package
python3-prometheus-client), which tests/integration/metrics_exposition_test.cpp
does.
"""

import sys

from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client import parser as prometheus_parser


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("prometheus", "openmetrics"):
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[2], encoding="utf-8") as f:
        text = f.read()
    parse = (openmetrics_parser if sys.argv[1] == "openmetrics" else prometheus_parser).text_string_to_metric_families
    try:
        families = list(parse(text))
    except Exception as e:  # the parsers raise ValueError and others
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    samples = sum(len(f.samples) for f in families)
    print(f"families {len(families)} samples {samples}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
