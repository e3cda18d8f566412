#!/bin/sh
# `make run`: start sluice-mock on 127.0.0.1:8081 and sluice on 127.0.0.1:8080
# with conf/dev.conf (sluice-mock as its provider), in the foreground.
# Ctrl-C stops both. With SLUICE_CONFIG set, that config is served instead
# (sluice-mock still runs, for configs that use it).
set -e
cd "$(dirname "$0")/.."

# The port conf/dev.conf names as its provider's.
build/sluice-mock --listen 127.0.0.1:8081 &
mock=$!
trap 'kill $mock 2>/dev/null; wait $mock 2>/dev/null' EXIT INT TERM

echo "sluice: try  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\"
echo "             -d '{\"model\":\"reliable\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
build/sluice --config "${SLUICE_CONFIG:-conf/dev.conf}"
