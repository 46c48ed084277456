# Sourced by the load scripts (bench_load.sh, bench_streams.sh): a fresh
# release `serve` per run on loopback, its own data dir and free ports.
# Needs $bin (the callguard binary), $config (a serve config) and $out.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_serve NAME: starts serve (log in $out/NAME.serve.log), waits up to
# 10 s for /readyz and sets serve_pid, serve_grpc, serve_data.
start_serve() {
  serve_data=$(mktemp -d)
  serve_grpc=$(free_port)
  local http
  http=$(free_port)
  "$bin" serve --config "$config" --data-dir "$serve_data" --listen "127.0.0.1:$serve_grpc" \
    --http "127.0.0.1:$http" >"$out/$1.serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
}

# stop_serve: stops the serve start_serve started and removes its data.
stop_serve() {
  kill -TERM "$serve_pid"
  wait "$serve_pid" || true
  rm -rf "$serve_data"
}
