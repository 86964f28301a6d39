#!/usr/bin/env bash
# Checks the Prometheus alerting rules in deploy/prometheus (make test-prometheus):
#   check    promtool check rules deploy/prometheus/regwatch.rules.yaml
#   test     promtool test rules deploy/prometheus/tests/*.yaml
#   coverage every alert of the rules has a test case where it fires and one where it stays silent
#   metrics  the metric names the rule expressions and the Grafana dashboard's queries (deploy/grafana)
#            reference, each of which must be listed in docs/metrics.md
# Prints one PASS or FAIL line per check and exits 1 if any failed. Then prints the sorted metric names, one
# per line; with an argument, also writes them to that file (compared with the aggregator's real /metrics
# output elsewhere). Series Prometheus makes itself when it scrapes (up, scrape_*) are not listed: the
# aggregator does not export them.
# Needs promtool (Debian package prometheus; written against 2.42) and python3 with python3-yaml.
set -uo pipefail
cd "$(dirname "$0")/.."

RULES=deploy/prometheus/regwatch.rules.yaml
GRAFANA=deploy/grafana/regwatch.json
TESTS=(deploy/prometheus/tests/*.yaml)
OUT=${1:-}

failures=0
pass() { printf 'PASS  %-8s %s\n' "$1" "$2"; }
fail() { printf 'FAIL  %-8s %s\n' "$1" "$2"; failures=$((failures + 1)); }
log=$(mktemp)
trap 'rm -f "$log" "$log.names"' EXIT

command -v promtool >/dev/null || { echo "test-prometheus: promtool not found (Debian package prometheus)" >&2; exit 2; }

if promtool check rules "$RULES" >"$log" 2>&1; then
    pass check "$RULES"
else
    cat "$log"; fail check "$RULES"
fi

if promtool test rules "${TESTS[@]}" >"$log" 2>&1; then
    pass test "${#TESTS[@]} files in deploy/prometheus/tests"
else
    cat "$log"; fail test "${#TESTS[@]} files in deploy/prometheus/tests"
fi

# Coverage: per alert name, an alert_rule_test with exp_alerts and one without (an empty list).
if python3 - "$RULES" "${TESTS[@]}" >"$log" 2>&1 <<'EOF'
import sys, yaml

rules_path, test_paths = sys.argv[1], sys.argv[2:]
alerts = []
for group in yaml.safe_load(open(rules_path))["groups"]:
    for rule in group["rules"]:
        if "alert" in rule and rule["alert"] not in alerts:
            alerts.append(rule["alert"])
fires, silent = set(), set()
for path in test_paths:
    for test in yaml.safe_load(open(path)).get("tests") or []:
        for case in test.get("alert_rule_test") or []:
            (fires if case.get("exp_alerts") else silent).add(case["alertname"])
missing = [f"{a}: no case where it {what}" for a in alerts
           for what, seen in (("fires", fires), ("stays silent", silent)) if a not in seen]
for line in missing:
    print(line)
sys.exit(1 if missing or not alerts else 0)
EOF
then
    pass coverage "$(grep -c '^      - alert:' "$RULES") alerts, each fires once and stays silent once"
else
    cat "$log"; fail coverage "alerts without a firing or a silent test case"
fi

# Metric names: in each expression, drop string literals, label matchers ({...}), ranges and subqueries
# ([...]) and the label lists of by/without/on/ignoring/group_left/group_right; what remains and is an
# identifier not followed by "(" (a function call) and not a keyword is a metric name.
if python3 - "$RULES" "$GRAFANA" "$log.names" >"$log" 2>&1 <<'EOF'
import json, re, sys, yaml

rules_path, grafana_path, names_path = sys.argv[1], sys.argv[2], sys.argv[3]
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
            "offset", "inf", "nan", "atan2"}
SCRAPE_SERIES = re.compile(r"^(up|scrape_[a-z_]+)$")

def names(expr):
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    found = set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", expr):
        word = m.group(1)
        if word.lower() not in KEYWORDS:
            found.add(word)
    return found

with open(rules_path) as f:
    doc = yaml.safe_load(f)
used = set()
for group in doc["groups"]:
    for rule in group["rules"]:
        used |= names(str(rule["expr"]))

# The Grafana dashboard's queries: every "expr" anywhere in the JSON (its variables sit inside label matchers).
def exprs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                yield v
            else:
                yield from exprs(v)
    elif isinstance(node, list):
        for v in node:
            yield from exprs(v)
queries = list(exprs(json.load(open(grafana_path))))
if not queries:
    print(f"{grafana_path}: no expr found")
    sys.exit(1)
for q in queries:
    used |= names(q)
exported = sorted(n for n in used if not SCRAPE_SERIES.match(n))

# docs/metrics.md is the list of exported metrics (the summary table's first column); a histogram's series
# carry _bucket, _sum and _count.
documented = set(re.findall(r"^\| `([a-z_:][a-z0-9_:]*)` \|", open("docs/metrics.md").read(), re.M))
def is_documented(name):
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    return name in documented or base in documented
unknown = [n for n in exported if not is_documented(n)]
for n in unknown:
    print(f"not in docs/metrics.md: {n}")
with open(names_path, "w") as f:
    f.writelines(n + "\n" for n in exported)
sys.exit(1 if unknown or not exported else 0)
EOF
then
    pass metrics "$(wc -l <"$log.names") names used by the rules and $GRAFANA, all in docs/metrics.md"
else
    cat "$log"; fail metrics "names not in docs/metrics.md, or none found"
fi

echo "metric names referenced by $RULES and $GRAFANA:"
cat "$log.names" 2>/dev/null
if [ -n "$OUT" ]; then
    cp "$log.names" "$OUT" && echo "(written to $OUT)"
fi

[ "$failures" -eq 0 ] || { echo "test-prometheus: $failures check(s) failed"; exit 1; }
echo "test-prometheus: all checks passed"
