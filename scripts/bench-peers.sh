#!/usr/bin/env bash
# make bench-peers: measures cordon side by side with sandbox-runtime (srt), bubblewrap and the
# bare commands, in one run on this machine. Not part of `make test` or CI.
#
# It installs what it needs into a temporary directory (hyperfine, bubblewrap, socat, ripgrep
# from Debian with `apt-get download`, srt from npm), builds cordon and a loopback HTTP server,
# then measures:
#   1. start overhead: true, cordon -- true, srt true, bwrap, and cordon with a realistic policy
#   2. a 1 GiB download from a local server through each sandbox's proxy, and direct
#   3. 1,000 small keep-alive HTTP requests through each proxy, and direct
#   4. peak RSS of each supervising process
# and writes a Markdown table to $WORK/results.md (and into BENCHMARKS.md with UPDATE=1).
#
# Environment: RUNS (start-time runs, default 50), DL_RUNS (download runs, default 5),
# SRT_VERSION (default 0.0.78), WORK (default a new temp dir), UPDATE=1 to rewrite the
# results section of BENCHMARKS.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d /tmp/cordon-bench.XXXXXX)}
RUNS=${RUNS:-50}
DL_RUNS=${DL_RUNS:-5}
SRT_VERSION=${SRT_VERSION:-0.0.78}
mkdir -p "$WORK"
cd "$WORK"
echo "bench-peers: working in $WORK" >&2

# --- tools, into $WORK only -----------------------------------------------------------------
if [ ! -x root/usr/bin/hyperfine ]; then
	mkdir -p debs root
	(cd debs && apt-get download hyperfine bubblewrap socat ripgrep libwrap0 >/dev/null 2>&1) || {
		apt-get update -qq && (cd debs && apt-get download hyperfine bubblewrap socat ripgrep libwrap0 >/dev/null)
	}
	for d in debs/*.deb; do dpkg -x "$d" root; done
fi
if [ ! -x npm/node_modules/.bin/srt ]; then
	mkdir -p npm
	npm install --prefix npm --no-audit --no-fund --silent "@anthropic-ai/sandbox-runtime@$SRT_VERSION" >/dev/null
fi
export PATH="$WORK/root/usr/bin:$WORK/npm/node_modules/.bin:$PATH"
export LD_LIBRARY_PATH="$WORK/root/lib/x86_64-linux-gnu:$WORK/root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath -o "$WORK/cordon" ./cmd/cordon && go build -o "$WORK/server" ./scripts/benchpeers)
CORDON="$WORK/cordon"

# --- a local server on loopback ---------------------------------------------------------------
./server > server.addr &
SERVER_PID=$!
trap 'kill $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s server.addr ] && break; sleep 0.1; done
ADDR=$(cat server.addr)
PORT=${ADDR##*:}
echo "bench-peers: server on $ADDR" >&2

# --- policies -----------------------------------------------------------------------------------
mkdir -p proj && cd proj
DOMAINS=(api.anthropic.com statsig.anthropic.com github.com api.github.com codeload.github.com
	objects.githubusercontent.com raw.githubusercontent.com registry.npmjs.org pypi.org
	files.pythonhosted.org proxy.golang.org sum.golang.org crates.io static.crates.io
	index.crates.io rubygems.org repo.maven.apache.org dl.google.com deb.debian.org example.com)
q() { printf '"%s", ' "$@"; }
cat > realistic.toml <<EOF
version = 1
presets = ["default"]
[filesystem]
deny_read = ["~/.ssh", "~/.aws", "~/.gnupg", "~/.kube", "~/.docker", "~/.netrc"]
allow_write = ["."]
[network]
allow = [$(q "${DOMAINS[@]}")]
EOF
cat > proxy.toml <<EOF
version = 1
presets = ["default"]
[network]
allow = ["127.0.0.1:$PORT"]
allow_private = ["127.0.0.1"]
EOF
cat > srt.json <<EOF
{"network": {"allowedDomains": [$(q "${DOMAINS[@]}" | sed 's/, $//')], "deniedDomains": []},
 "filesystem": {"denyRead": ["~/.ssh", "~/.aws", "~/.gnupg", "~/.kube", "~/.docker", "~/.netrc"],
                "allowWrite": ["."], "denyWrite": []}}
EOF
cat > srt-proxy.json <<EOF
{"network": {"allowedDomains": ["127.0.0.1", "localhost"], "deniedDomains": []},
 "filesystem": {"denyRead": [], "allowWrite": ["."], "denyWrite": []}}
EOF
# curl must use the proxy even for 127.0.0.1, which the sandboxes put in NO_PROXY.
for i in $(seq 1000); do echo "url = \"http://127.0.0.1:$PORT/small\""; echo 'output = "/dev/null"'; done > small.curl

# --- 1. start overhead ----------------------------------------------------------------------------
hyperfine -N --warmup 5 --runs "$RUNS" --export-json ../start.json \
	-n 'true' 'true' \
	-n 'cordon -- true' "$CORDON -- true" \
	-n 'srt true' "srt --settings srt.json true" \
	-n 'bwrap' 'bwrap --unshare-net --unshare-user --ro-bind / / true' \
	-n 'cordon, realistic policy' "$CORDON --policy realistic.toml -- sh -c 'echo hi'" \
	-n 'srt, realistic policy' "srt --settings srt.json -c 'echo hi'" >&2

# --- 2. 1 GiB download --------------------------------------------------------------------------
DL="curl -sS --fail --noproxy '' -o /dev/null http://127.0.0.1:$PORT/bytes/1073741824"
hyperfine --warmup 1 --runs "$DL_RUNS" --export-json ../download.json \
	-n 'direct' "$DL" \
	-n 'cordon' "$CORDON --policy proxy.toml -- sh -c \"$DL\"" \
	-n 'srt' "srt --settings srt-proxy.json -c \"$DL\"" >&2

# --- 3. 1,000 keep-alive requests -----------------------------------------------------------
KA="curl -sS --fail --noproxy '' -K small.curl"
hyperfine --warmup 1 --runs "$DL_RUNS" --export-json ../keepalive.json \
	-n 'direct' "$KA" \
	-n 'cordon' "$CORDON --policy proxy.toml -- sh -c \"$KA\"" \
	-n 'srt' "srt --settings srt-proxy.json -c \"$KA\"" >&2

# --- 4. peak RSS of the supervisor (VmHWM of the process we started, polled until it exits) ----
peak() {
	"$@" >/dev/null 2>&1 &
	local pid=$! hwm=0 v
	while kill -0 "$pid" 2>/dev/null; do
		v=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
		[ -n "$v" ] && hwm=$v
		sleep 0.02
	done
	wait "$pid" || true
	echo "$hwm"
}
{
	echo "cordon_idle $(peak "$CORDON" -- sleep 1)"
	echo "srt_idle $(peak srt --settings srt.json sleep 1)"
	echo "cordon_download $(peak "$CORDON" --policy proxy.toml -- sh -c "$DL")"
	echo "srt_download $(peak srt --settings srt-proxy.json -c "$DL")"
} > ../rss.txt

cd "$WORK"
python3 - "$WORK" <<'EOF' > results.md
import json, sys, os, platform, subprocess
work = sys.argv[1]
def load(name):
    return {r["command"]: r for r in json.load(open(os.path.join(work, name)))["results"]}
def med(r): return r["median"]
def ver(cmd):
    try: return subprocess.run(cmd, capture_output=True, text=True, shell=True).stdout.strip().splitlines()[0]
    except Exception: return "?"
start, dl, ka = load("start.json"), load("download.json"), load("keepalive.json")
rss = dict(l.split() for l in open(os.path.join(work, "rss.txt")))
cpu = ver("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
print(f"Machine: {cpu.strip()}, {os.cpu_count()} cores, Linux {platform.release()}. "
      f"Versions: {ver(work + '/cordon version')}; srt {ver('srt --version')}; {ver('bwrap --version')}; "
      f"{ver('hyperfine --version')}; {ver('curl --version')}.\n")
base, srt = med(start["true"]), med(start["srt true"])
print("### Start overhead (median of hyperfine runs)\n")
print("| command | median | added to `true` | vs `srt true` |\n| --- | ---: | ---: | ---: |")
for name, r in start.items():
    m = med(r)
    print(f"| `{name}` | {m*1000:.2f} ms | {(m-base)*1000:+.2f} ms | {srt/m:.1f}x faster |" if name != "srt true"
          else f"| `{name}` | {m*1000:.2f} ms | {(m-base)*1000:+.2f} ms | 1.0x |")
print("\n### 1 GiB download from a loopback server\n")
print("| path | median | throughput | vs direct |\n| --- | ---: | ---: | ---: |")
d0 = med(dl["direct"])
for name, r in dl.items():
    m = med(r); print(f"| {name} | {m:.3f} s | {1024/m:.0f} MiB/s | {d0/m:.2f} |")
print("\n### 1,000 keep-alive requests (one curl, connection reused)\n")
print("| path | median (whole run) | per request | vs direct |\n| --- | ---: | ---: | ---: |")
k0 = med(ka["direct"])
for name, r in ka.items():
    m = med(r); print(f"| {name} | {m*1000:.1f} ms | {m*1000:.0f} µs | {k0/m:.2f} |")
print("\n### Peak RSS of the supervising process (VmHWM)\n")
print("| run | cordon | srt | cordon / srt |\n| --- | ---: | ---: | ---: |")
for k in ("idle", "download"):
    c, s = int(rss["cordon_"+k]), int(rss["srt_"+k])
    print(f"| {k} | {c/1024:.1f} MiB | {s/1024:.1f} MiB | {c/s if s else 0:.2f} |")
EOF
cat results.md
if [ "${UPDATE:-}" = 1 ]; then
	python3 - "$ROOT/BENCHMARKS.md" results.md <<'EOF'
import sys
doc, res = open(sys.argv[1]).read(), open(sys.argv[2]).read()
a, b = "<!-- results:begin -->", "<!-- results:end -->"
i, j = doc.index(a) + len(a), doc.index(b)
open(sys.argv[1], "w").write(doc[:i] + "\n" + res + doc[j:])
EOF
	echo "bench-peers: BENCHMARKS.md updated" >&2
fi
