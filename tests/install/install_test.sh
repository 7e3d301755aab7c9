#!/usr/bin/env bash
# Installs the build tree into a temporary prefix, then builds and runs a
# project outside it (consumer/) against that prefix only:
#   find_package  with CMake: find_package(trellis CONFIG), trellis::trellis
#   pkg-config    with g++ $(pkg-config --cflags --libs trellis)
# Both also check the installed tree: the public headers are exactly those
# trellis/trellis.hpp includes (none private, none missing), `trellis
# --version` and `trellis-demo --version` print the project's version, the
# systemd unit names the installed binary, and the Python package imports.
# Usage: install_test.sh find_package|pkg-config BUILD_DIR VERSION
set -euo pipefail
mode=$1 build=$2 version=$3
here=$(cd "$(dirname "$0")" && pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log" >&2; fail "cmake --install"; }

# The installed tree.
binaries=(trellis)
if [[ -e $build/bin/trellis-demo ]]; then  # not with -DTRELLIS_BUILD_EXAMPLES=OFF
  binaries+=(trellis-demo)
fi
for binary in "${binaries[@]}"; do
  got=$("$prefix/bin/$binary" --version)
  [[ $got == "trellis $version" ]] || fail "$binary --version printed '$got', expected 'trellis $version'"
  [[ -s $prefix/share/man/man1/$binary.1 ]] || fail "no man page $binary.1"
done
grep -qx "ExecStart=$prefix/bin/trellis dispatcher" "$prefix/lib/systemd/system/trellis-dispatcher.service" ||
  fail "trellis-dispatcher.service does not start $prefix/bin/trellis"
grep -qx "ExecStart=$prefix/bin/trellis-demo worker" "$prefix/lib/systemd/system/trellis-worker.service" ||
  fail "trellis-worker.service does not start $prefix/bin/trellis-demo worker"
grep -qx "#define TRELLIS_VERSION \"$version\"" "$prefix/include/trellis/version.hpp" || fail "version.hpp is not $version"

# The Python package, where the build has it (docs/python.md): under
# lib/python3/dist-packages, importable from there alone (-S: no site-packages,
# so no trellis.pth) by the interpreter it was built for, with its version.
if compgen -G "$build/python/trellis/_native*.so" >/dev/null; then
  site=$prefix/lib/python3/dist-packages
  compgen -G "$site/trellis/_native*.so" >/dev/null || fail "no trellis/_native*.so in $site"
  got=$(cd "$tmp" && PYTHONPATH=$site PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -S -c \
    'import trellis; print(trellis.__version__, trellis.__file__)' 2>&1) ||
    fail "the installed Python package does not import: $got"
  [[ $got == "$version $site/trellis/__init__.py" ]] || fail "import trellis gave '$got', expected version $version from $site"
fi

# Public headers: every installed header is one trellis/trellis.hpp reaches
# (so no test, actor, store or transport header), and it compiles from the
# installed include directory alone.
(cd "$prefix/include" && find . -type f | sed 's|^\./||' | sort) >"$tmp/installed"
echo '#include <trellis/trellis.hpp>' >"$tmp/probe.cpp"
g++ -std=c++17 -MM "-I$prefix/include" "$tmp/probe.cpp" >"$tmp/deps" || fail "trellis/trellis.hpp does not compile from $prefix/include"
tr ' \\' '\n\n' <"$tmp/deps" | grep "^$prefix/include/" | sed "s|^$prefix/include/||" | sort -u >"$tmp/reached"
if ! diff "$tmp/reached" "$tmp/installed" >"$tmp/header.diff"; then
  echo "headers: '<' reached but not installed, '>' installed but not reached (private):" >&2
  cat "$tmp/header.diff" >&2
  fail "installed headers are not exactly those trellis/trellis.hpp includes"
fi

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
case $mode in
  find_package)
    cmake -S "$here/consumer" -B "$tmp/build" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$prefix" \
      "${launcher[@]}" >"$tmp/configure.log" 2>&1 || { cat "$tmp/configure.log" >&2; fail "consumer: cmake configure"; }
    grep -q -- "-- Found trellis $version in $prefix/lib/cmake/trellis\$" "$tmp/configure.log" || {
      cat "$tmp/configure.log" >&2; fail "consumer: find_package did not find trellis $version in $prefix"; }
    cmake --build "$tmp/build" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; fail "consumer: build"; }
    consumer=$tmp/build/consumer
    ;;
  pkg-config)
    export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
    got=$(pkg-config --modversion trellis)
    [[ $got == "$version" ]] || fail "pkg-config --modversion trellis is '$got', expected $version"
    flags=$(pkg-config --cflags --libs trellis)
    compiler=(g++)
    if command -v ccache >/dev/null; then
      compiler=(ccache g++)
    fi
    # shellcheck disable=SC2086  # the flags are words
    "${compiler[@]}" -std=c++17 -O1 -Wall -Wextra -o "$tmp/consumer" "$here/consumer/main.cpp" $flags ||
      fail "consumer: g++ with pkg-config --cflags --libs trellis ($flags)"
    consumer=$tmp/consumer
    ;;
  *) fail "unknown mode '$mode' (find_package or pkg-config)" ;;
esac

out=$("$consumer" "$tmp/store.db") || fail "consumer exited $?: $out"
[[ $out == "trellis $version result: 50" ]] || fail "consumer printed '$out', expected 'trellis $version result: 50'"
[[ -s $tmp/store.db ]] || fail "consumer wrote no store file"
echo "$mode: $out"
