#!/usr/bin/env bash
# Where candado's time and memory go under the harness's load (issue 16), with the same
# pinning as ../shared/bench/run.sh: candado on CPU 0, load generator, origin and tools on CPU 1.
#
#   bench/profile.sh perf     SCENARIO   perf record (cpu-clock, DWARF call graphs) + top entries
#   bench/profile.sh syscalls SCENARIO   syscalls per request (perf tracepoints; strace -c -f)
#   bench/profile.sh allocs   SCENARIO   allocations per request (uprobes on jemalloc's entry points)
#   bench/profile.sh instructions SCENARIO  instructions per request (cachegrind; PROFILE_N)
#   bench/profile.sh callers  SCENARIO   instructions by function and callee (callgrind)
#   bench/profile.sh heap     SCENARIO   allocation call sites per request (heaptrack; it names
#                                        Rust frames only with line tables: build with
#                                        CARGO_PROFILE_RELEASE_DEBUG=line-tables-only)
#   bench/profile.sh idle-h2             RSS per idle HTTP/2 connection (bench/h2idle.py, 2000)
#   bench/profile.sh idle                RSS per idle TLS connection; PROFILE_MASSIF=1: the heap
#                                        at its peak by call site (valgrind massif, 1000 conns;
#                                        the RSS printed then is valgrind's, not candado's)
#
# SCENARIO: static_h2 | static_keepalive_h1 | proxy_keepalive_h1, and for perf, syscalls and
# instructions also handshake_full | handshake_resumed (counts are then handshakes). Needs the
# harness set up once (scripts/bench does it), a candado binary with symbols (CANDADO_BIN,
# default target/release/candado; build with CARGO_PROFILE_RELEASE_STRIP=false), perf, strace
# and heaptrack. Output goes to OUT (default target/bench/profile/<mode>-<scenario>). Every
# load run is bounded by `timeout`; only processes started here are stopped, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mode=${1:?usage: bench/profile.sh perf|syscalls|allocs|instructions|callers|heap|idle|idle-h2 [SCENARIO]}
scenario=${2:-static_h2}
harness=${BENCH_HARNESS:-$repo/../shared/bench}
tmp=/tmp/tlsbench
candado=${CANDADO_BIN:-$repo/target/release/candado}
tlsload=${BENCH_TLSLOAD:-$tmp/target/release/tlsload}  # built by the harness's run.sh
secs=${PROFILE_SECS:-6}
[ "$mode" = idle ] && scenario=conns
[ "$mode" = idle-h2 ] && scenario=conns-h2
out=${OUT:-$repo/target/bench/profile/$mode-$scenario}
mkdir -p "$out"
export PATH=$PATH:/usr/sbin

for f in crt key; do ln -sfn "ecdsa.$f" "$tmp/certs/server.$f"; done
ulimit -n 20000

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

start_origin() {
    sed -e "s#@RUN@#$out#g" -e "s#@TMP@#$tmp#g" -e "s#@ORIGIN_PORT@#8080#g" \
        "$harness/peers/origin-nginx.conf" >"$out/origin.conf"
    taskset -c 1 nginx -e "$out/origin-startup.log" -c "$out/origin.conf" &
    pids+=($!)
}

start_candado() {  # [wrapper...]: e.g. heaptrack
    setsid taskset -c 0 "$@" "$candado" serve -c "$repo/bench/candado.yaml" >"$out/server.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        curl -sk --max-time 1 -o /dev/null "https://127.0.0.1:8443/index.html" && break
        sleep 0.2
    done
    # heaptrack runs candado as a child; under valgrind (or alone) it is the session leader.
    spid=$(pgrep -n -f "^$candado serve" -s "${pids[-1]}" || true)
    spid=${spid:-${pids[-1]}}
}

url() {
    case "$scenario" in
        proxy_keepalive_h1) echo "https://127.0.0.1:8443/proxy/index.html" ;;
        *) echo "https://127.0.0.1:8443/index.html" ;;
    esac
}

load() {  # seconds -> runs the harness's load for the scenario on CPU 1; prints the request count
    local d=$1 f=$out/load.txt
    case "$scenario" in
        static_h2)
            timeout -k 2 $((d + 10)) taskset -c 1 h2load -t1 -c16 -m10 -D "$d" "$(url)" >"$f" 2>&1
            awk '/^requests:/{print $8}' "$f" ;;  # succeeded
        static_keepalive_h1 | proxy_keepalive_h1)
            timeout -k 2 $((d + 10)) taskset -c 1 wrk -t1 -c64 -d"${d}s" "$(url)" >"$f" 2>&1
            awk '/requests in/{print $1}' "$f" ;;
        handshake_full | handshake_resumed)  # the harness's client; counts are handshakes
            local m=full
            [ "$scenario" = handshake_resumed ] && m=resume
            timeout -k 2 $((d + 10)) taskset -c 1 "$tlsload" --mode "$m" --conns 32 \
                --duration "$d" --warmup 0 >"$f" 2>&1
            grep -o ' handshakes=[0-9]*' "$f" | cut -d= -f2 ;;
        *) echo "unknown scenario $scenario" >&2; exit 2 ;;
    esac
}

count() {  # requests -> sends exactly that many, with the scenario's connections (h2load)
    local n=$1 f=$out/load.txt conns=(--h1 -c64 -m1)
    [ "$scenario" = static_h2 ] && conns=(-c16 -m10)
    timeout -k 2 600 taskset -c 1 h2load -t1 "${conns[@]}" -n "$n" "$(url)" >"$f" 2>&1
    awk '/^requests:/{print $8}' "$f"
}

start_origin
case "$mode" in
    perf)
        start_candado
        load 1 >/dev/null
        (sleep 1 && taskset -c 1 perf record -q -e cpu-clock -F 999 --call-graph dwarf,16384 \
            -p "$spid" -o "$out/perf.data" -- sleep "$secs") 2>"$out/perf-record.log" &
        rec=$!
        n=$(load $((secs + 2)))
        wait "$rec"
        echo "requests during the load: $n" | tee "$out/summary.txt"
        perf report -i "$out/perf.data" --children --stdio --no-call-graph --sort symbol \
            --percent-limit 1.5 2>/dev/null | grep -v '^$' >"$out/children.txt"
        perf report -i "$out/perf.data" --no-children --stdio --no-call-graph --sort dso,symbol \
            --percent-limit 0.7 2>/dev/null | grep -v '^$' >"$out/self.txt"
        echo "$out/children.txt $out/self.txt"
        ;;
    syscalls)
        start_candado
        load 1 >/dev/null
        # task-clock: the CPU time of candado's own threads, which other processes on the
        # machine do not inflate (unlike the harness's per-core busy time).
        events=task-clock,raw_syscalls:sys_enter
        for s in read write writev readv recvfrom sendto sendmsg recvmsg epoll_wait epoll_pwait \
            futex openat openat2 statx newfstat newfstatat close lseek pread64 sched_yield \
            madvise mmap munmap brk; do
            # Tracepoints differ between kernels: use the ones this one has.
            [ -d "/sys/kernel/tracing/events/syscalls/sys_enter_$s" ] && events=$events,syscalls:sys_enter_$s
        done
        perf stat -x, -e "$events" -p "$spid" -o "$out/perfstat.csv" &
        st=$!
        n=$(load "$secs")
        kill -INT "$st" 2>/dev/null || true; wait "$st" || true
        {
            echo "requests: $n (unperturbed window, perf stat tracepoints)"
            awk -F, -v n="$n" '$3 == "task-clock" {printf "  %-34s %10.0f ms  %.2f us CPU per request\n", $3, $1, 1000*$1/n}
                $1 ~ /^[0-9]+$/ && $1 > 0 {printf "  %-34s %10d  %.3f per request\n", $3, $1, $1/n}' "$out/perfstat.csv"
        } | tee "$out/summary.txt"
        [ "${PROFILE_STRACE:-1}" = 1 ] || exit 0
        # strace for the full breakdown (it slows the server, so batching differs a little).
        timeout 60 strace -c -f -p "$spid" -o "$out/strace.txt" &
        st=$!
        sleep 1
        n=$(load "$secs")
        kill -INT "$st" 2>/dev/null || true; wait "$st" || true
        { echo "strace window: $n requests"; cat "$out/strace.txt"; } | tee -a "$out/summary.txt"
        ;;
    instructions)
        # Instructions per request, counted by cachegrind (valgrind): a figure the machine's
        # load barely moves (runs agree within 0.5 %), unlike CPU time (this guest has no
        # hardware counters for perf).
        # Two runs, of N and 11*N requests: the difference over the difference cancels
        # start-up and shutdown. Valgrind runs the threads one at a time, ~50x slower.
        # Handshakes: two runs of the harness's client, for 2 and 12 s (PROFILE_HS_SECS), over
        # the difference in handshakes it made.
        n1=${PROFILE_N:-2000}
        case "$scenario" in
            handshake_*) runs=(2 "${PROFILE_HS_SECS:-12}") unit=handshake ;;
            *) runs=("$n1" $((n1 * 11))) unit=request ;;
        esac
        refs=() counts=()
        for r in "${runs[@]}"; do
            start_candado valgrind --tool=cachegrind --cache-sim=no --branch-sim=no \
                --cachegrind-out-file="$out/cachegrind.$r"
            case "$unit" in
                handshake) ok=$(load "$r") n=${ok:-0} ;;
                *) ok=$(count "$r") n=$r ;;
            esac
            kill -TERM "$spid" 2>/dev/null || true  # gone already if it crashed
            for _ in $(seq 1 300); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
            ref=$(awk '/I *refs:/{gsub(",", "", $NF); print $NF}' "$out/server.out")
            if [ "${ok:-0}" != "$n" ] || [ "$n" = 0 ] || [ -z "$ref" ]; then
                echo "instructions: the run of $r did not complete (${ok:-0} answered;" \
                    "valgrind's count: ${ref:-none}); see $out/server.out and $out/load.txt" >&2
                exit 1
            fi
            refs+=("$ref") counts+=("$n")
        done
        {
            echo "${unit}s: ${counts[*]}; instructions: ${refs[*]}"
            awk -v a="${refs[0]}" -v b="${refs[1]}" -v n="$((counts[1] - counts[0]))" -v u="$unit" \
                'BEGIN {printf "  %.0f instructions per %s\n", (b - a) / n, u}'
        } | tee "$out/summary.txt"
        ;;
    callers)
        # Where the instructions go, by function with what each calls (callgrind), for one run
        # of 11*N requests; start-up (aws-lc's entropy seeding, ~420 M) is in it: divide the
        # request path's figures by the request count.
        n=$(( ${PROFILE_N:-1000} * 11 ))
        start_candado valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$n"
        ok=$(count "$n")
        kill -TERM "$spid" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
        if [ "${ok:-0}" != "$n" ]; then
            echo "callers: the run of $n requests did not complete (${ok:-0} answered);" \
                "see $out/server.out and $out/load.txt" >&2
            exit 1
        fi
        callgrind_annotate --inclusive=yes "$out/callgrind.$n" >"$out/inclusive.txt" 2>/dev/null
        callgrind_annotate --inclusive=yes --tree=calling "$out/callgrind.$n" \
            >"$out/tree.txt" 2>/dev/null
        echo "requests: $n; $out/inclusive.txt (by function), $out/tree.txt (and their callees)" |
            tee "$out/summary.txt"
        ;;
    allocs)
        start_candado
        load 1 >/dev/null
        # The allocator's entry points: jemalloc's inside the binary (candado's global
        # allocator), or libc's for a build with the system allocator.
        perf probe -q -d 'alloc:*' 2>/dev/null || true
        if [ -n "$(nm "$candado" 2>/dev/null | grep -w _rjem_malloc)" ]; then
            lib=$candado fns=(malloc=_rjem_malloc free=_rjem_sdallocx realloc=_rjem_realloc calloc=_rjem_calloc)
        else
            lib=$(ldd "$candado" | awk '/libc.so/{print $3}')
            fns=(malloc=malloc free=free realloc=realloc calloc=calloc)
        fi
        for fn in "${fns[@]}"; do perf probe -q -x "$lib" -a "alloc:$fn" 2>/dev/null || true; done
        perf stat -x, -e 'alloc:malloc,alloc:free,alloc:realloc,alloc:calloc' \
            -p "$spid" -o "$out/allocs.csv" &
        st=$!
        n=$(load "$secs")
        kill -INT "$st" 2>/dev/null || true; wait "$st" || true
        {
            echo "requests: $n"
            awk -F, -v n="$n" '$1 ~ /^[0-9]+$/ {printf "  %-22s %10d  %.2f per request\n", $3, $1, $1/n}' "$out/allocs.csv"
        } | tee "$out/summary.txt"
        # Who calls malloc: every 20th call with its call graph (symbols only: the release
        # binary has no line tables, so heaptrack cannot name Rust frames).
        (sleep 1 && taskset -c 1 perf record -q -e alloc:malloc -c 20 --call-graph dwarf,8192 \
            -p "$spid" -o "$out/malloc.data" -- sleep 3) 2>"$out/perf-record.log" &
        rec=$!
        load 5 >/dev/null
        wait "$rec" || true
        perf probe -q -d 'alloc:*' 2>/dev/null || true
        perf report -i "$out/malloc.data" --no-children --stdio -g caller,0.5,callee,function,percent \
            --percent-limit 3 2>/dev/null | grep '%' >"$out/malloc-callers.txt"
        echo "$out/malloc-callers.txt"
        ;;
    heap)
        start_candado heaptrack -o "$out/heaptrack"
        load 1 >/dev/null
        n=$(load "$secs")
        echo "requests: $n (1 s warm-up before)" | tee "$out/summary.txt"
        kill -TERM "$spid"
        for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
        sleep 1
        heaptrack_print -f "$out"/heaptrack.*zst -n 25 -s 0 >"$out/heaptrack.txt" 2>/dev/null || true
        echo "$out/heaptrack.txt"
        ;;
    idle)
        tlsload=${BENCH_TLSLOAD:-$tmp/target/release/tlsload}
        n=${PROFILE_IDLE_N:-5000}
        if [ "${PROFILE_MASSIF:-0}" = 1 ]; then
            n=${PROFILE_IDLE_N:-1000}  # valgrind makes each handshake ~30x slower
            start_candado valgrind --tool=massif --depth=60 --threshold=0.2 --detailed-freq=1 \
                --max-snapshots=200 --massif-out-file="$out/massif.out"
        else
            start_candado
        fi
        rss0=$(ps -o rss= -p "$spid")
        mkfifo "$out/fifo" 2>/dev/null || true
        taskset -c 1 "$tlsload" --mode idle --addr 127.0.0.1:8443 --n "$n" --conns 100 \
            --open-timeout 30 --hold 60 <"$out/fifo" >"$out/idle.txt" 2>&1 &
        cpid=$!
        exec 9>"$out/fifo"
        for _ in $(seq 1 300); do grep -q '^READY' "$out/idle.txt" && break; sleep 0.1; done
        sleep 1.5
        rss1=$(ps -o rss= -p "$spid")
        cp "/proc/$spid/smaps_rollup" "$out/smaps_rollup.txt"
        cp "/proc/$spid/status" "$out/status.txt"
        opened=$(grep -o 'opened=[0-9]*' "$out/idle.txt" | cut -d= -f2 || echo "$n")
        {
            echo "idle connections: $opened; RSS before $rss0 KiB, after $rss1 KiB"
            awk -v a="$rss0" -v b="$rss1" -v n="${opened:-$n}" 'BEGIN{printf "RSS per connection: %.2f KiB\n", (b-a)/n}'
            grep -E 'Threads' "$out/status.txt"
        } | tee "$out/summary.txt"
        # Stop the server while the connections are still open: heaptrack's peak is then the
        # idle state.
        kill -TERM "$spid"
        for _ in $(seq 1 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
        exec 9>&-
        wait "$cpid" 2>/dev/null || true
        if [ -s "$out/massif.out" ]; then
            # The peak snapshot's top-level entries divided by n are the bytes per connection.
            ms_print "$out/massif.out" >"$out/massif.txt"
            echo "massif: $out/massif.txt (ms_print); the detailed peak snapshot holds the call sites"
        fi
        ;;
    idle-h2)
        n=${PROFILE_IDLE_N:-2000}
        start_candado
        rss0=$(ps -o rss= -p "$spid")
        timeout 120 taskset -c 1 python3 "$repo/bench/h2idle.py" "$n" 8443 30 >"$out/idle.txt" 2>&1 &
        cpid=$!
        for _ in $(seq 1 600); do grep -q '^READY' "$out/idle.txt" && break; sleep 0.1; done
        sleep 1.5
        rss1=$(ps -o rss= -p "$spid")
        {
            echo "idle HTTP/2 connections: $(awk '/^READY/{print $2}' "$out/idle.txt"); RSS before $rss0 KiB, after $rss1 KiB"
            awk -v a="$rss0" -v b="$rss1" -v n="$n" 'BEGIN{printf "RSS per connection: %.2f KiB\n", (b-a)/n}'
        } | tee "$out/summary.txt"
        kill "$cpid" 2>/dev/null || true
        wait "$cpid" 2>/dev/null || true
        ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
