#!/usr/bin/env bash
# Every script a person runs answers --help and -h with the comment at its top and
# exits 0, without setting anything up or starting anything (a script that ignored
# the flag would go on to do its job, and print something else or run out of time).
#
#   tests/scripts/help_test.sh       (ctest runs it as scripts_help)
set -uo pipefail
[[ ${1:-} == -h || ${1:-} == --help ]] && { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0; }
cd "$(dirname "$0")/../.."

failures=0
checked=0
while IFS= read -r script; do
  [[ $script == bench/common.sh ]] && continue  # sourced by the bench scripts, not run
  # The header as a person reads it: the comment lines after the #! line.
  want=$(sed -n '2,$p' "$script" | sed -n '/^#/!q; s/^# \{0,1\}//p')
  if [[ -z $want ]]; then
    echo "FAIL $script: no comment at its top to show as its help"
    failures=$((failures + 1))
    continue
  fi
  for flag in --help -h; do
    got=$(timeout 20 bash "$script" "$flag" 2>&1 </dev/null)
    rc=$?
    checked=$((checked + 1))
    if ((rc != 0)); then
      echo "FAIL $script $flag: exit $rc"
      failures=$((failures + 1))
    elif [[ $got != "$want" ]]; then
      echo "FAIL $script $flag: printed something other than its header:"
      head -n 5 <<<"$got" | sed 's/^/    /'
      failures=$((failures + 1))
    fi
  done
done < <(find bench deploy scripts tests -name '*.sh' | sort)

echo "$checked runs of $((checked / 2)) scripts checked, $failures failed"
((checked > 0 && failures == 0))
