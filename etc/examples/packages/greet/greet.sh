#!/usr/bin/env bash
# greet NAME: print a greeting.
printf 'Hello, %s!\n' "${1:-world}"
