#!/usr/bin/env bash
# Makes `import trellis` work for the python3 on the PATH and for Debian's
# /usr/bin/python3 (docs/python.md): writes a trellis.pth naming the built
# package's directory (build/python, or $1) into each interpreter's
# site-packages, but only where the interpreter's extension suffix (its
# ABI: cpython-311-x86_64-linux-gnu) is the one the module was built for;
# another interpreter is told to use PYTHONPATH, or nothing, and skipped.
# scripts/bootstrap.sh runs it after the build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(realpath "${1:-build/python}")
module=$(compgen -G "$dir/trellis/_native*.so" | head -n 1 || true)
if [[ -z "$module" ]]; then
  echo "python_path: no built module in $dir/trellis (is pybind11-dev installed?); skipped" >&2
  exit 0
fi
suffix=${module#"$dir/trellis/_native"}

declare -A seen=()
for py in "$(command -v python3 || true)" /usr/bin/python3; do
  [[ -n "$py" && -x "$py" ]] || continue
  # The same interpreter under two names (python3 on the PATH is often /usr/bin/python3).
  real=$("$py" -c 'import sys; print(sys.executable)' 2>/dev/null) || continue
  [[ -z "${seen[$real]:-}" ]] || continue
  seen[$real]=1
  "$py" - "$dir" "$suffix" <<'PY'
import os
import site
import sys
import sysconfig

directory, suffix = sys.argv[1], sys.argv[2]
name = f"{sys.executable} ({sys.version.split()[0]})"
if sysconfig.get_config_var("EXT_SUFFIX") != suffix:
    print(f"python_path: {name} expects *{sysconfig.get_config_var('EXT_SUFFIX')}, the module is *{suffix}: "
          f"skipped (build for it, or run it with PYTHONPATH={directory} if the ABI matches)", file=sys.stderr)
    sys.exit(0)
for place in site.getsitepackages() + [site.getusersitepackages()]:
    try:
        os.makedirs(place, exist_ok=True)
        with open(os.path.join(place, "trellis.pth"), "w") as f:
            f.write(directory + "\n")
    except OSError:
        continue
    print(f"python_path: {name}: {os.path.join(place, 'trellis.pth')} -> {directory}", file=sys.stderr)
    break
else:
    print(f"python_path: {name}: no writable site-packages; use PYTHONPATH={directory}", file=sys.stderr)
PY
done
