#!/usr/bin/env bash
# Start-up cost of both Lambda binaries under cargo-lambda's runtime emulator, and their sizes.
#
# For each function: start the emulator alone, start the release binary against it, and time
# the first invoke (process start + runtime init + handler) and then warm invokes of the same
# event. The event fails fast without touching S3, so the difference is the initialisation.
# usage: tests/bench/startup.sh   (after `cargo build --release --workspace`)
set -euo pipefail
cd "$(dirname "$0")/../.."
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" </dev/null >/dev/null 2>&1 &
watch=$!
trap 'kill -INT $watch 2>/dev/null; kill $(jobs -p) 2>/dev/null || true' EXIT
until (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.1; done

now_ms() { date +%s%3N; }
invoke_ms() { # name event-json
  local t0; t0=$(now_ms)
  curl -s -m 30 -o /dev/null -X POST "http://127.0.0.1:$port/2015-03-31/functions/$1/invocations" -d "$2"
  echo $(( $(now_ms) - t0 ))
}

pre_event='{"dataObject": {"source": "text, nothing to label"}}'
acs_event='{"labelingJobArn": "arn:aws:sagemaker:us-east-1:1:labeling-job/x", "labelAttributeName": "x-ref", "payload": {"s3Uri": "https://not-s3/p.json"}}'
echo "| binary | size | first invoke (cold) | warm invoke | initialisation ≈ |"
echo "|---|---|---|---|---|"
for fn in pre-semantic-segmentation acs-semantic-segmentation; do
  if [ "$fn" = pre-semantic-segmentation ]; then ev=$pre_event; else ev=$acs_event; fi
  t0=$(now_ms)
  env AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/$fn" AWS_LAMBDA_FUNCTION_NAME=$fn \
      AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128 \
      AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_EC2_METADATA_DISABLED=true \
      LABEL_CATEGORY_CONFIG=events/store/gt-example-bucket/config/labels.json \
      "target/release/$fn" >/dev/null 2>&1 &
  bin=$!
  curl -s -m 30 -o /dev/null -X POST "http://127.0.0.1:$port/2015-03-31/functions/$fn/invocations" -d "$ev"
  cold=$(( $(now_ms) - t0 ))
  warm=999999
  for _ in 1 2 3 4 5; do w=$(invoke_ms "$fn" "$ev"); [ "$w" -lt "$warm" ] && warm=$w; done
  size=$(du -k "target/release/$fn" | cut -f1)
  echo "| $fn | $((size / 1024)).$(( (size % 1024) * 10 / 1024 )) MiB | $cold ms | $warm ms | $((cold - warm)) ms |"
  kill "$bin" 2>/dev/null || true
done
