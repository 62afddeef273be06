#!/usr/bin/env bash
# Shell tests for greet.sh; writes a JUnit file to $1.
set -u
out="$1"
pass=0; fail=0; cases=""
check() {
    local name="$1" expected="$2" actual="$3"
    if [ "$expected" = "$actual" ]; then
        pass=$((pass + 1)); cases="$cases<testcase classname=\"greet\" name=\"$name\"/>"
    else
        fail=$((fail + 1)); cases="$cases<testcase classname=\"greet\" name=\"$name\"><failure message=\"expected $expected, got $actual\"/></testcase>"
    fi
}
check default "Hello, world!" "$(./greet.sh)"
check named "Hello, STScI!" "$(./greet.sh STScI)"
mkdir -p "$(dirname "$out")"
printf '<?xml version="1.0"?>\n<testsuites><testsuite name="greet" tests="%d" failures="%d" errors="0" skipped="0">%s</testsuite></testsuites>\n' \
    $((pass + fail)) "$fail" "$cases" > "$out"
echo "greet: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
