#!/usr/bin/env bash
# Installs what is missing from Debian 12's packages, then builds Trellis
# (Release) into build/, and makes `python3 -c "import trellis"` work
# (scripts/python_path.sh). Safe to run again: it installs and rebuilds only
# what changed. Run as root on a fresh machine (it uses apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake           # compiler and build
  libcaf-dev                      # C++ Actor Framework 0.17: supervisor, dispatcher, worker actors
  libnats-dev nats-server         # NATS client (cluster transport) and server (integration tests)
  libmsgpack-cxx-dev libboost-dev # msgpack envelopes (msgpack-cxx wants Boost headers)
  libsqlite3-dev                  # the workflow store
  nlohmann-json3-dev              # workflow files and CLI JSON
  libcli11-dev                    # command-line parsing
  libcpp-httplib-dev              # the HTTP endpoint: metrics, health, JSON API, task events, dashboard
  libspdlog-dev                   # the process log: timestamps, levels, text or JSON lines (spdlog 1.10, with fmt)
  libssl-dev openssl              # HMAC-SHA256 message signing; openssl makes the TLS test certificates
  catch2                          # tests
  python3                         # scripts/check_layers.py and check_quotes.py (run by ctest)
  python3-prometheus-client       # the Prometheus and OpenMetrics parsers the metrics tests check our text with
  pkg-config                      # test install_pkg_config builds against the installed trellis.pc; finds cpp-httplib
  chromium chromium-driver        # test dashboard_browser: the dashboard in a real, headless browser
  python3-selenium                # ... driven through chromedriver
  pybind11-dev                    # the Python package's C++ module (engine/python, docs/python.md)
  python3-dev                     # the Python headers that module is compiled against
  python3-pytest                  # the Python package's tests (tests/python, run by ctest)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
# `import trellis` for python3 and /usr/bin/python3: a trellis.pth naming build/python.
bash scripts/python_path.sh build/python
