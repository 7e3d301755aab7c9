#!/usr/bin/env bash
# Writes a man page for a Trellis binary from its --help text: the binary's,
# then every command's and subcommand's, so that `man trellis` shows what
# `--help` does without a second copy of it to keep up to date.
# Usage: man_page.sh BINARY NAME VERSION OUT
set -euo pipefail
binary=$1 name=$2 version=$3 out=$4

# argv[0] is NAME, so the Usage lines say `trellis`, not the build path.
help_of() { (exec -a "$name" "$binary" "$@" --help); }
# The commands a help text lists under "Subcommands:".
commands_in() { awk '/^Subcommands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on = 0}'; }
# Roff-safe: backslashes escaped, no line starting with a dot or quote.
roff() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

top=$(help_of)
{
  printf '.TH %s 1 "" "trellis %s" "User Commands"\n' "$(echo "$name" | tr a-z A-Z)" "$version"
  printf '.SH NAME\n%s \\- %s\n' "$name" "$(head -n1 <<<"$top" | roff)"
  printf '.SH SYNOPSIS\n.B %s\n[\\fIOPTIONS\\fR] \\fICOMMAND\\fR ...\n' "$name"
  printf '.SH DESCRIPTION\n.nf\n'
  tail -n +2 <<<"$top" | roff
  for command in $(commands_in <<<"$top"); do
    sub=$(help_of "$command")
    printf '.fi\n.SS %s\n.nf\n' "$command"
    roff <<<"$sub"
    for nested in $(commands_in <<<"$sub"); do
      printf '.fi\n.SS "%s %s"\n.nf\n' "$command" "$nested"
      help_of "$command" "$nested" | roff
    done
  done
  printf '.fi\n.SH EXIT STATUS\n'
  printf '0 success, 1 a workflow failed, 2 bad input, 3 the store cannot be used,\n'
  printf '4 the broker cannot be reached or did not answer, 143 stopped by SIGTERM or SIGINT.\n'
  printf '.SH SEE ALSO\n'
  printf 'docs/cli.md and docs/cluster.md in the Trellis sources.\n'
} >"$out.tmp"
mv "$out.tmp" "$out"
