#!/usr/bin/env bash
# The static page that trains EGGROLL in the browser.
#   bash scripts/web.sh build         builds the wasm crate `eggroll-web` and writes a
#                                     self-contained site to web/dist/ (index.html, app.js,
#                                     worker.js, style.css, eggroll_web.js and its wasm);
#   bash scripts/web.sh serve [PORT]  serves web/dist/ on http://127.0.0.1:PORT/ (default 8080).
# `build` sources scripts/browser_env.sh, which installs what is missing (the wasm32 target,
# wasm-bindgen-cli at the version of the wasm-bindgen crate in Cargo.lock, chromium, chromedriver,
# python3). The site loads nothing from the network.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: bash scripts/web.sh build | serve [PORT]" >&2
  exit 2
}

build() {
  # shellcheck source=scripts/browser_env.sh
  source scripts/browser_env.sh
  cargo build --release -p eggroll-web --target wasm32-unknown-unknown
  local target_dir
  target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  rm -rf web/dist
  mkdir -p web/dist
  wasm-bindgen --target web --no-typescript --out-dir web/dist "$target_dir/wasm32-unknown-unknown/release/eggroll_web.wasm"
  cp web/www/* web/dist/
  echo "web/dist/ is built; serve it with: bash scripts/web.sh serve [PORT]"
}

serve() {
  local port="${1:-8080}"
  if ! [[ "$port" =~ ^[0-9]+$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
    echo "error: PORT must be a number from 1 to 65535, got '$port'" >&2
    exit 2
  fi
  local missing=""
  for f in index.html app.js worker.js eggroll_web.js eggroll_web_bg.wasm; do
    [ -f "web/dist/$f" ] || missing="$missing $f"
  done
  if [ -n "$missing" ]; then
    echo "error: web/dist is not built (missing:$missing): run bash scripts/web.sh build" >&2
    exit 1
  fi
  echo "serving web/dist on http://127.0.0.1:$port/ (Ctrl-C stops)"
  # Python's static server, with the wasm MIME type that WebAssembly.instantiateStreaming needs
  # and no caching, so a rebuilt site is what the browser loads.
  exec python3 -c '
import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript", ".html": "text/html; charset=utf-8"}
    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()
handler = functools.partial(Handler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
' "$port" web/dist
}

case "${1:-}" in
  build)
    [ $# -eq 1 ] || usage
    build
    ;;
  serve)
    [ $# -le 2 ] || usage
    serve "${2:-8080}"
    ;;
  *)
    usage
    ;;
esac
