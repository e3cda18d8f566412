#!/bin/sh
# `make run`: start sluice-mock on 127.0.0.1:8081 and sluice on 127.0.0.1:8080
# with the built-in config (sluice-mock as provider), in the foreground.
# Ctrl-C stops both. With SLUICE_CONFIG set, that config is used instead.
set -e
cd "$(dirname "$0")/.."
MOCK_PORT=${MOCK_PORT:-8081}

build/sluice-mock --listen "127.0.0.1:$MOCK_PORT" &
mock=$!
trap 'kill $mock 2>/dev/null; wait $mock 2>/dev/null' EXIT INT TERM

echo "sluice: try  curl http://127.0.0.1:8080/v1/chat/completions -H 'Content-Type: application/json' \\"
echo "             -d '{\"model\":\"reliable\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}'"
if [ -n "$SLUICE_CONFIG" ]; then
    build/sluice --config "$SLUICE_CONFIG"
else
    build/sluice --mock-url "http://127.0.0.1:$MOCK_PORT/v1"
fi
