"""Checks a Prometheus text exposition (stdin) with prometheus_client's parser, plus the
conventions the parser tolerates: every family has HELP and TYPE, counters end in _total,
histogram buckets are cumulative and end with +Inf equal to _count. Prints one line per
family ("FAMILY TYPE SAMPLES") and exits 1 with the reasons on any problem."""
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
problems = []
helps, types = set(), {}
for line in text.splitlines():
    if line.startswith("# HELP "):
        helps.add(line.split(" ", 3)[2])
    elif line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ", 3)
        if name in types:
            problems.append(f"{name}: TYPE given twice")
        types[name] = kind
for name in types:
    if name not in helps:
        problems.append(f"{name}: no HELP")
for name in helps:
    if name not in types:
        problems.append(f"{name}: HELP without TYPE")

try:
    families = list(text_string_to_metric_families(text))
except Exception as e:  # the parser's verdict is the point
    print(f"parser refused the exposition: {e!r}")
    sys.exit(1)

for f in families:
    # The parser drops _total from counter family names.
    exposed = f.name + "_total" if f.type == "counter" else f.name
    if exposed not in types:
        problems.append(f"{f.name}: samples without a TYPE line (as {exposed})")
    if f.type == "counter" and types.get(exposed) != "counter":
        problems.append(f"{exposed}: a counter must end in _total")
    if f.type not in ("counter", "gauge", "histogram"):
        problems.append(f"{f.name}: unexpected type {f.type}")
    for s in f.samples:
        if math.isnan(s.value) or s.value < 0:
            problems.append(f"{s.name}{s.labels}: value {s.value}")
    if f.type == "histogram":
        series = {}
        for s in f.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            series.setdefault(key, {"buckets": [], "count": None, "sum": None})
            if s.name.endswith("_bucket"):
                series[key]["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                series[key]["count"] = s.value
            elif s.name.endswith("_sum"):
                series[key]["sum"] = s.value
        for key, v in series.items():
            b = v["buckets"]
            if not b or b[-1][0] != math.inf:
                problems.append(f"{f.name}{key}: no +Inf bucket last")
                continue
            if any(b[i][0] >= b[i + 1][0] or b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
                problems.append(f"{f.name}{key}: buckets not increasing and cumulative")
            if v["count"] != b[-1][1]:
                problems.append(f"{f.name}{key}: _count {v['count']} != +Inf bucket {b[-1][1]}")
            if v["sum"] is None:
                problems.append(f"{f.name}{key}: no _sum")
    print(f"{f.name} {f.type} {len(f.samples)}")

if problems:
    print("PROBLEMS:")
    for p in problems:
        print("  " + p)
    sys.exit(1)
