#!/usr/bin/env bash
# Perplexity on the H200 (issue 9 item 5's GPU rows): `tessera perplexity --device cuda` on
# the default model and Debian's GPL-3 text (the same file the CPU rows use; carried as
# tests/gpu/GPL-3 when the device image lacks it), ctx 512, every chunk, for each weight
# scheme with a bf16 KV cache and for bf16 weights with each KV cache type.
#   perplexity_run.sh BIN_DIR MODEL.gguf [TEXT]      (a table on stdout; logs under $OUT)
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=$1/bin
MODEL=$2
TEXT=${3:-/usr/share/common-licenses/GPL-3}
export LD_LIBRARY_PATH=$1/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
OUT=${OUT:-/var/tmp/tessera-gpu-out}
mkdir -p "$OUT"
echo "text: $TEXT ($(wc -c <"$TEXT") bytes, sha256 $(sha256sum "$TEXT" | cut -c1-16))"
echo "| weights | KV | PPL (ctx 512, all chunks) |"
echo "|---|---|---|"
status=0
for row in "none bf16" "bf16 bf16" "fp8 bf16" "int8 bf16" "int4 bf16" "bf16 fp8" "bf16 int8" \
           "bf16 fp16"; do
  set -- $row
  log="$OUT/ppl_${1}_${2}.log"
  if timeout 240 "$BIN/tessera" perplexity --model "$MODEL" --file "$TEXT" --ctx-size 512 \
      --device cuda --quantization "$1" --kv-cache-dtype "$2" >"$log" 2>&1; then
    echo "| $1 | $2 | $(tail -1 "$log" | sed 's/Final estimate: PPL = //') |"
  else
    echo "| $1 | $2 | FAILED: $(tail -2 "$log" | tr '\n' ' ') |"; status=1
  fi
done
exit $status
