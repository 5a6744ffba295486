#!/usr/bin/env bash
# What mod_palisade costs Prosody: N chat messages between PAIRS client pairs through a plain
# Prosody, then through a Prosody with the module, the gateway and the simulator (one wait-mode
# step per message: es_OUT/message, handling pass), side by side in one run. Reports messages/s
# and CPU µs per message of Prosody (and of the gateway and simulator) for both.
#
# usage: integrations/prosody/bench.sh [MESSAGES (20000)] [PAIRS (20)] [WORKDIR]
# env:   PALISADE=path/to/palisade (default: target/release's, else target/debug's; build
#        with cargo build --release for meaningful gateway figures)
#        BENCH_ENTRY='{ event = "es_OUT", packet = "message", fire_and_forget = true, handling = "pass" }'
#        replaces the profile's one entry (here: a notice the module does not wait for);
#        BENCH_PERF=1 records a perf profile of Prosody; BENCH_RECV_TIMEOUT (s, default 120);
#        BENCH_LPROF=1 loads bench_lprof/mod_lprof.lua into each Prosody: WORK/LABEL.lprof.txt then
#        holds its Lua VM instructions (thousands) and where they went; slows Prosody ~10x;
#        BENCH_BASELINE=path/to/mod_palisade.lua runs a third time with that module (e.g. an older
#        commit's: git show REV:integrations/prosody/mod_palisade.lua > /tmp/old.lua), same clients
#        BENCH_COUNT=0 leaves out the counts below (they need perf);
#        BENCH_PROSODY_NETWORK="opportunistic_writes = true" adds network_settings fields, to
#        the plain Prosody and the one with the module alike (compare like with like);
#        BENCH_WINDOW=K: each sender keeps at most K messages on their way and sends the next
#        as one arrives (users writing line after line), instead of all its messages at once
#        (the default, 0: the worst case for the module, see README.md);
#        BENCH_ROUNDS=R repeats the plain run and the module's R times, one after the other,
#        and adds every round's figures and their medians (a shared machine's noise is in the
#        spread; one round is what the first table and target lines show);
#        BENCH_SHARDS=N runs the gateway with N shards (default 1: one Prosody is one component
#        connection, and all its events arrive on the shard that holds it);
#        BENCH_CALLGRIND=1 runs each Prosody and the gateway under valgrind --tool=callgrind and
#        reports their instructions per message over the run (Prosody's C and Lua alike; both
#        ~50x slower, so use a few thousand messages; the timed figures then mean nothing);
#        BENCH_PROSODY_CPUS=LIST (taskset's CPU list) is where every Prosody runs, plain or with
#        the module. Default: the last CPU, as the gateway's one shard is placed on the first
#        (glommio's MaxSpread placement; the run checks it): a gateway is deployed on cores of
#        its own, and a gateway sharing Prosody's core pays for preempting it at every wake-up
#        (on a 2-CPU VM that doubled its CPU per message). BENCH_PROSODY_CPUS=none leaves
#        Prosody where the scheduler puts it; a machine with one CPU never pins.
# Every run also reports, per message, counts that do not move with the machine's load
# (perf stat -p on each process, every thread, over the run): syscalls, io_uring_enter and
# epoll calls, io_uring requests, context switches; and perf's task-clock beside the /proc
# CPU time. On a shared machine, judge the CPU targets by these and by instructions.
# exit:  0 ran; 77 Prosody, python3 or the binary is missing.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
N=${1:-20000}
PAIRS=${2:-20}
WORK=${3:-$(mktemp -d /tmp/palisade-prosody-bench.XXXXXX)}
mkdir -p "$WORK"
command -v prosody >/dev/null 2>&1 || { echo "SKIP: prosody not installed"; exit 77; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: python3 missing"; exit 77; }
PALISADE=${PALISADE:-}
if [ -z "$PALISADE" ]; then
    for p in "$ROOT/target/release/palisade" "$ROOT/target/debug/palisade"; do
        if [ -x "$p" ] && [ -z "$PALISADE" ]; then PALISADE=$p; fi
    done
fi
[ -n "$PALISADE" ] && [ -x "$PALISADE" ] || { echo "SKIP: no palisade binary (cargo build --release)"; exit 77; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for env in "$WORK"/*.env; do # every Prosody started (start_prosody writes DIR.env)
        [ -e "$env" ] && "$ROOT/tests/interop/prosody/stop.sh" "${env%.env}" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

CPUS=$(nproc)
PROSODY_CPUS=${BENCH_PROSODY_CPUS:-$([ "$CPUS" -ge 2 ] && echo $((CPUS - 1)) || echo none)}
USERS=""
for i in $(seq 0 $((PAIRS - 1))); do USERS="$USERS s$i:pw r$i:pw"; done

start_prosody() { # DIR [PLUGIN_DIR: load mod_palisade from there]
    local modules="" paths=""
    if [ -n "${2:-}" ]; then modules='"palisade", '; paths="\"$2\", "; fi
    if [ -n "${BENCH_LPROF:-}" ]; then modules="$modules\"lprof\""; paths="$paths\"$HERE/bench_lprof\""; fi
    local lines="    modules_enabled = { $modules }"
    local command=prosody
    if [ -n "${BENCH_CALLGRIND:-}" ]; then
        command="valgrind --tool=callgrind --callgrind-out-file=$1.callgrind.%p lua5.4 $(command -v prosody)"
    fi
    LPROF_OUT="$1.lprof.txt" PROSODY_PLUGIN_PATHS="$paths" PROSODY_VHOST_LINES="$lines" PROSODY_EXTRA_USERS="$USERS" PROSODY_NAGLE=false PROSODY_NETWORK_EXTRA="${BENCH_PROSODY_NETWORK:-}" \
    PROSODY_COMMAND="$command" PROSODY_START_TIMEOUT=180 \
    PROSODY_LOG_LEVEL=${BENCH_PROSODY_LOG_LEVEL:-warn} "$ROOT/tests/interop/prosody/start.sh" "$1" > "$1.env"
    if [ "$PROSODY_CPUS" != none ]; then
        (. "$1.env" && taskset -a -cp "$PROSODY_CPUS" "$PID" >/dev/null)
    fi
}

# The CPUs the threads of process PID named NAME* may run on (glommio names the gateway's shard
# threads after the pool: "palisade-N"), as one taskset list.
allowed_cpus() { # PID NAME
    local t
    for t in /proc/"$1"/task/*; do
        case "$(cat "$t/comm" 2>/dev/null)" in
            "$2"*) sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$t/status" 2>/dev/null ;;
        esac
    done | sort -u | paste -sd,
}
# Each CPU of a taskset list ("0-2,5"), one per line.
each_cpu() { local r; for r in ${1//,/ }; do seq "${r%-*}" "${r#*-}"; done; }
# bench_clients.py's --callgrind argument when Prosody runs under callgrind.
grind_arg() { if [ -n "${BENCH_CALLGRIND:-}" ]; then echo "--callgrind=prosody=$1.callgrind"; fi; }

run_plain() { # DIR: a plain Prosody and the clients
    start_prosody "$1"
    (
        . "$1.env"
        python3 "$HERE/bench_clients.py" --port "$C2S_PORT" --pairs "$PAIRS" --messages "$N" --window "${BENCH_WINDOW:-0}" \
            --pid "prosody=$PID" --label plain $(grind_arg "$1")
    ) > "$1.json"
    if [ -n "${BENCH_LPROF:-}" ]; then sleep 3.5; fi
    "$ROOT/tests/interop/prosody/stop.sh" "$1" >/dev/null
}

# The one profile entry (BENCH_ENTRY overrides it, e.g. with fire_and_forget = true).
ENTRY=${BENCH_ENTRY:-'{ event = "es_OUT", packet = "message", handling = "pass" }'}

run_module() { # LABEL PLUGIN_DIR [DIR]: Prosody with the module found there, the gateway, the simulator
    local label=$1 dir=${3:-$WORK/$1}
    start_prosody "$dir" "$2"
    (
    . "$dir.env"
    CS_PORT=$(free_port)
    "$PALISADE" sim --listen "127.0.0.1:$CS_PORT" --secret bench-cs --quiet > "$dir.sim.out" 2>&1 &
    SIM=$!
    cat > "$dir.palisade.toml" <<TOML
[gateway]
name = "$COMPONENT"
domain = "localhost"
shards = ${BENCH_SHARDS:-1}
[listen]
routers = "127.0.0.1:$(free_port)"
[[router]]
name = "localhost"
secret = "$SECRET"
connect = "127.0.0.1:$COMPONENT_PORT"
[[profile]]
name = "OneStep"
events = [$ENTRY]
[[server]]
name = "cs1"
host = "127.0.0.1"
port = $CS_PORT
password = "bench-cs"
profile = "OneStep"
TOML
    local grind=() up=20
    if [ -n "${BENCH_CALLGRIND:-}" ]; then
        grind=(valgrind --tool=callgrind "--callgrind-out-file=$dir.gw.callgrind.%p")
        up=180
    fi
    "${grind[@]}" "$PALISADE" run --config "$dir.palisade.toml" > /dev/null 2> "$dir.palisade.log" &
    GW=$!
    trap 'kill $GW $SIM 2>/dev/null || true' EXIT
    deadline=$(( $(date +%s) + up ))
    until grep -q "Router localhost is ACTIVE" "$dir.palisade.log" && grep -q "Component .* is ACTIVE" "$dir.palisade.log"; do
        # A gateway stalled at start-up may not end on SIGTERM (seen under callgrind): KILL it.
        [ "$(date +%s)" -lt "$deadline" ] || { echo "the gateway never came up; logs in $WORK" >&2; kill -9 "$GW"; exit 1; }
        sleep 0.1
    done
    sleep 1 # the module asks which events to send once the gateway is connected
    local prosody_cpus gw_cpus
    prosody_cpus=$(allowed_cpus "$PID" "")
    gw_cpus=$(allowed_cpus "$GW" palisade-)
    echo "placement: Prosody on CPU(s) ${prosody_cpus:-?}, the gateway's shard on CPU(s) ${gw_cpus:-?}" > "$dir.placement"
    if [ "$PROSODY_CPUS" != none ] && [ -n "$gw_cpus" ] &&
        [ -n "$(comm -12 <(each_cpu "$prosody_cpus" | sort) <(each_cpu "$gw_cpus" | sort))" ]; then
        echo "warning: Prosody (CPU $prosody_cpus) shares a CPU with the gateway's shard ($gw_cpus)" | tee -a "$dir.placement" >&2
    fi
    if [ -n "${BENCH_PERF:-}" ]; then # profile Prosody during the run (perf report -i WORK/LABEL.perf.data)
        perf record -F 999 -g -p "$PID" -o "$dir.perf.data" >/dev/null 2>&1 &
        PERF=$!
    fi
    python3 "$HERE/bench_clients.py" --port "$C2S_PORT" --pairs "$PAIRS" --messages "$N" --window "${BENCH_WINDOW:-0}" \
        --pid "prosody=$PID" --pid "gateway=$GW" --pid "sim=$SIM" --label "$label" $(grind_arg "$dir") \
        ${BENCH_CALLGRIND:+--callgrind=gateway=$dir.gw.callgrind} > "$dir.json"
    if [ -n "${PERF:-}" ]; then kill -INT "$PERF"; wait "$PERF" || true; fi
    if [ -n "${BENCH_LPROF:-}" ]; then sleep 3.5; fi # its last report
    if [ -n "${BENCH_CALLGRIND:-}" ]; then kill "$GW"; wait "$GW" 2>/dev/null || true; fi
    )
    "$ROOT/tests/interop/prosody/stop.sh" "$dir" >/dev/null
}

# Round 1's files are WORK/plain*, WORK/module* (and WORK/baseline*); round K's WORK/LABEL-rK*.
ROUNDS=${BENCH_ROUNDS:-1}
case "$ROUNDS" in
    ''|*[!0-9]*) ROUNDS=0 ;;
esac
[ "$ROUNDS" -ge 1 ] || { echo "BENCH_ROUNDS must be a whole number of rounds, 1 or more" >&2; exit 2; }
if [ -n "${BENCH_BASELINE:-}" ]; then # another mod_palisade.lua to compare, e.g. an older commit's
    mkdir -p "$WORK/baseline-plugin"
    cp "$BENCH_BASELINE" "$WORK/baseline-plugin/mod_palisade.lua"
fi
RESULTS=()
for round in $(seq 1 "$ROUNDS"); do
    suffix=""
    if [ "$round" -gt 1 ]; then suffix="-r$round"; fi
    if [ "$ROUNDS" -gt 1 ]; then echo "== round $round of $ROUNDS" >&2; fi
    echo "== plain Prosody" >&2
    run_plain "$WORK/plain$suffix"
    echo "== Prosody with mod_palisade, the gateway and the simulator" >&2
    run_module module "$HERE" "$WORK/module$suffix"
    RESULTS+=("$WORK/plain$suffix.json" "$WORK/module$suffix.json")
    if [ -n "${BENCH_BASELINE:-}" ]; then
        echo "== the same with the baseline module $BENCH_BASELINE" >&2
        run_module baseline "$WORK/baseline-plugin" "$WORK/baseline$suffix"
        RESULTS+=("$WORK/baseline$suffix.json")
    fi
done

python3 - "$PALISADE" "$ENTRY" "$ROUNDS" "${RESULTS[@]}" <<'PY'
import json, statistics, sys
every = [json.loads(open(p).read()) for p in sys.argv[4:]]
rounds = int(sys.argv[3])
per_round = len(every) // rounds
# The table and the target lines below are round 1's; with more rounds, a table of every
# round and the medians follow.
runs = every[:per_round]
plain = runs[0]
print("binary: %s; %d messages over %d pairs, %s; the gateway's profile: %s"
      % (sys.argv[1], plain["messages"], plain["pairs"],
         "each sender with at most %d on their way" % plain["window"] if plain.get("window")
         else "each sender's sent at once", sys.argv[2]))
names = {"plain": "plain", "module": "with module", "baseline": "baseline module"}
print("%-26s" % "" + "".join("%16s" % names[r["label"]] for r in runs))
def row(title, key, fmt):
    print("%-26s" % title + "".join(("%16" + fmt) % r[key] if key in r else "%16s" % "-" for r in runs))
row("messages/s", "messages_per_s", ".0f")
row("Prosody CPU µs/msg", "prosody_cpu_us_per_msg", ".1f")
row("gateway CPU µs/msg", "gateway_cpu_us_per_msg", ".1f")
row("simulator CPU µs/msg", "sim_cpu_us_per_msg", ".1f")
print("per message, counts that do not move with the load (perf stat -p, every thread):")
for proc in ("prosody", "gateway"):
    for key, title in (("instructions", "instructions"), ("task_clock_ms", "task-clock µs"),
                       ("syscalls", "syscalls"), ("recvfrom", "recvfrom"), ("sendto", "sendto"),
                       ("io_uring_enter", "io_uring_enter"),
                       ("io_uring_requests", "io_uring requests"), ("epoll_wait", "epoll_wait"),
                       ("epoll_ctl", "epoll_ctl"), ("context_switches", "context switches")):
        k = "%s_%s_per_msg" % (proc, key)
        if not any(k in r for r in runs):
            continue
        scale = 1000.0 if key == "task_clock_ms" else 1.0
        if key == "instructions":
            title, scale = "k instructions", 0.001
        print("%-26s" % ("  %s %s" % (proc, title)) + "".join(
            "%16.2f" % (r[k] * scale) if k in r else "%16s" % "-" for r in runs))
for r in runs[1:]:
    rate = r["messages_per_s"] / plain["messages_per_s"]
    cpu = plain["prosody_cpu_us_per_msg"] / r["prosody_cpu_us_per_msg"]
    share = r["gateway_cpu_us_per_msg"] / r["prosody_cpu_us_per_msg"]
    print("%s: rate kept %.0f%% (target >= 50%%), Prosody CPU per message plain / with it %.0f%%; "
          "gateway CPU / Prosody CPU %.1f%% (target < 5%%)" % (names[r["label"]], rate * 100, cpu * 100, share * 100))
    if "prosody_instructions_per_msg" in r and "prosody_instructions_per_msg" in plain:
        print("%s: Prosody instructions per message plain / with it %.0f%% (the CPU proxy for the 50%% target)"
              % (names[r["label"]], 100 * plain["prosody_instructions_per_msg"] / r["prosody_instructions_per_msg"]))
    if "gateway_instructions_per_msg" in r and "prosody_instructions_per_msg" in r:
        print("%s: gateway instructions / Prosody instructions %.1f%% (the CPU proxy for the 5%% target)"
              % (names[r["label"]], 100 * r["gateway_instructions_per_msg"] / r["prosody_instructions_per_msg"]))
if rounds > 1:
    print("every round (a plain run, then each module's, one after the other; each its own Prosody):")
    print("%-8s%-16s%10s%10s%18s%12s%18s" % ("round", "", "msg/s", "rate kept", "Prosody µs/msg",
                                             "gateway µs", "gateway/Prosody"))
    figures = {}
    for k in range(rounds):
        group = every[k * per_round:(k + 1) * per_round]
        base = group[0]
        for r in group[1:]:
            rate = r["messages_per_s"] / base["messages_per_s"]
            share = r["gateway_cpu_us_per_msg"] / r["prosody_cpu_us_per_msg"]
            figures.setdefault(r["label"], []).append((rate, share))
            print("%-8d%-16s%10.0f%9.0f%%%18s%12.1f%17.1f%%" % (
                k + 1, names[r["label"]], r["messages_per_s"], rate * 100,
                "%.1f / %.1f" % (base["prosody_cpu_us_per_msg"], r["prosody_cpu_us_per_msg"]),
                r["gateway_cpu_us_per_msg"], share * 100))
    for label, values in figures.items():
        rates, shares = [v[0] for v in values], [v[1] for v in values]
        print("%s over %d rounds: rate kept median %.0f%% (%.0f-%.0f%%, target >= 50%%); "
              "gateway CPU / Prosody CPU median %.1f%% (%.1f-%.1f%%, target < 5%%)" % (
                  names[label], rounds, 100 * statistics.median(rates), 100 * min(rates),
                  100 * max(rates), 100 * statistics.median(shares), 100 * min(shares),
                  100 * max(shares)))
labels = [r["label"] for r in runs]
print("delivered: " + ", ".join("%s %s" % (names[label], " ".join(
    str(r["delivered"]) for r in every if r["label"] == label)) for label in labels))
PY
cat "$WORK"/*.placement 2>/dev/null | sort -u # each run's, once if all are alike
if [ -n "${BENCH_LPROF:-}" ]; then
    for label in plain module baseline; do
        f="$WORK/$label.lprof.txt"
        if [ -f "$f" ]; then echo "$label: Lua VM instructions (thousands), start-up and logins included: $(head -1 "$f" | cut -d' ' -f2); per message: $(head -1 "$f" | awk -v n="$N" '{ printf "%.2f", $2 / n }')"; fi
    done
fi
