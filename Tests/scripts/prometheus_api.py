#!/usr/bin/env python3
"""Talks to a real Prometheus server's HTTP API (urllib, json), for the tests that let Prometheus scrape
vxmon's /metrics: Prometheus is the oracle of what the exposition means, this script only asks it.

  prometheus_api.py wait-up URL TIMEOUT           until a target is up (its last scrape has no error);
                                                   prints the target
  prometheus_api.py wait-scrapes URL SINCE N TIMEOUT
                                                   until N scrapes have started after SINCE (Unix seconds,
                                                   this machine's clock, which Prometheus's is); prints
                                                   {"last_scrape": seconds}
  prometheus_api.py query URL EXPR                 an instant query now: {"result": [{"metric", "value"}]}
  prometheus_api.py dashboard URL FILE [NAME=VALUE...]
                                                   reads a Grafana dashboard (json), checks its shape, and
                                                   runs every panel target's `expr` (Grafana variables
                                                   $NAME / ${NAME} replaced by the VALUEs) and every
                                                   `label_values(METRIC, LABEL)` variable query

The dashboard report: {"panels": N, "problems": [text], "queries": [{"panel", "refId", "expr", "series",
"error"}], "variables": {name: [values]}, "metrics": {name: type}}. Problems are what Grafana or
Prometheus would get wrong: a panel type other than timeseries/stat, a duplicate id, overlapping or
out-of-grid gridPos, a target without refId/expr, a metric name Prometheus has no metadata for (it
learns HELP/TYPE from the scrape, series or not; a histogram's samples are its _bucket, _sum and
_count), a counter or histogram sample read other than through rate/irate/increase, a gauge put
through one of them. Exits 1 only when the API cannot be reached.
"""
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def get(url, path, params=None):
    full = url.rstrip("/") + path
    if params:
        full += "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(full, timeout=10) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    if body.get("status") != "success":
        raise RuntimeError("%s: %s %s" % (path, body.get("errorType"), body.get("error")))
    return body["data"]


def seconds(rfc3339):
    """Prometheus's lastScrape (nanosecond RFC 3339, UTC) as Unix seconds."""
    if not rfc3339 or rfc3339.startswith("0001-"):
        return 0.0
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", rfc3339)
    if not m:
        raise ValueError("unexpected time %r" % rfc3339)
    import calendar
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    t = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + float("0." + (m.group(7) or "0"))
    zone = m.group(8)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        t -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return t


def targets(url):
    return get(url, "/api/v1/targets", {"state": "active"}).get("activeTargets", [])


def wait_up(url, timeout):
    deadline = time.time() + timeout
    last = []
    while time.time() < deadline:
        last = targets(url)
        for t in last:
            if t.get("health") == "up" and t.get("lastError", "") == "":
                return t
        time.sleep(0.2)
    print("no target up after %gs: %s" % (timeout, json.dumps(last)), file=sys.stderr)
    return None


def wait_scrapes(url, since, n, timeout):
    deadline = time.time() + timeout
    seen = 0
    while time.time() < deadline:
        ts = targets(url)
        scraped = max((seconds(t.get("lastScrape")) for t in ts if t.get("health") == "up"), default=0.0)
        if scraped > since:
            seen += 1
            since = scraped
            if seen == n:
                return scraped
        time.sleep(0.1)
    print("%d of %d scrapes after %gs" % (seen, n, timeout), file=sys.stderr)
    return None


def query(url, expr):
    data = get(url, "/api/v1/query", {"query": expr})
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": float(data["result"][1])}]
    return [{"metric": r["metric"], "value": float(r["value"][1])} for r in data["result"]]


# The functions a counter is read through; a gauge through none of them.
RATES = ("rate", "irate", "increase")
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# PromQL words that are not metric names.
KEYWORDS = {
    "sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "stddev", "stdvar", "count_values",
    "group", "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
    "offset", "vector", "scalar", "time", "inf", "nan", "histogram_quantile", "label_replace", "clamp_min",
    "clamp_max", "abs", "sort", "sort_desc", "absent", "changes", "delta", "deriv", "resets",
} | set(RATES) | {f + "_over_time" for f in ("avg", "min", "max", "sum", "count", "last", "quantile")}


def metric_names(expr):
    """(name, offset) of each metric name in a PromQL expression: words outside strings, label
    matchers, grouping lists and range brackets that are not functions or keywords."""
    names = []
    i = 0
    depth_brace = 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            j = expr.index(c, i + 1)
            i = j + 1
            continue
        if c == "{":
            depth_brace += 1
        elif c == "}":
            depth_brace -= 1
        elif c == "[":
            i = expr.index("]", i) + 1
            continue
        m = NAME.match(expr, i) if (c.isalpha() or c in "_:") else None
        if m:
            word = m.group(0)
            end = m.end()
            rest = expr[end:].lstrip()
            before = expr[:i].rstrip()
            grouping = re.search(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*$", before)
            if depth_brace == 0 and not grouping and word not in KEYWORDS and not rest.startswith("("):
                if not re.fullmatch(r"\d+[smhdwy]", word):
                    names.append((word, i))
            i = end
            continue
        i += 1
    return names


def enclosing_function(expr, at):
    """The function whose parentheses enclose offset `at` most closely, or None."""
    depth = 0
    i = at - 1
    while i >= 0:
        c = expr[i]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                m = re.search(r"([a-zA-Z_]+)\s*$", expr[:i])
                return m.group(1) if m else None
            depth -= 1
        i -= 1
    return None


def substitute(expr, variables):
    for name, value in variables.items():
        expr = expr.replace("${%s}" % name, value).replace("$" + name, value)
    return expr


def dashboard(url, path, variables):
    with open(path) as f:
        board = json.load(f)
    problems = []
    report = {"panels": 0, "problems": problems, "queries": [], "variables": {}, "metrics": {}}
    metadata = get(url, "/api/v1/metadata")
    known = {name: entries[0]["type"] for name, entries in metadata.items()}

    def metric_type(name):
        """The type of the family whose samples `name` names; a histogram's _bucket, _sum and _count are
        "histogram", a histogram family's own name "histogram family" (no sample has it). OpenMetrics scrapes
        name a counter's family without `_total`, text scrapes with it."""
        if known.get(name) == "histogram":
            return "histogram family"
        if known.get(name) == "summary":
            return "summary quantiles"
        if name in known:
            return known[name]
        for suffix, kinds in (("_total", ("counter",)), ("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                              ("_count", ("histogram", "summary"))):
            if name.endswith(suffix) and known.get(name[:-len(suffix)]) in kinds:
                return known[name[:-len(suffix)]]
        return None

    if not isinstance(board.get("schemaVersion"), int):
        problems.append("no schemaVersion")
    panels = board.get("panels", [])
    ids = set()
    cells = {}
    for panel in panels:
        report["panels"] += 1
        title = panel.get("title", "?")
        if panel.get("type") not in ("timeseries", "stat"):
            problems.append("%s: type %r" % (title, panel.get("type")))
        if panel.get("id") in ids:
            problems.append("%s: duplicate id %r" % (title, panel.get("id")))
        ids.add(panel.get("id"))
        g = panel.get("gridPos", {})
        x, y, w, h = (g.get(k) for k in ("x", "y", "w", "h"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or y < 0 or w < 1 or h < 1 or x + w > 24:
            problems.append("%s: gridPos %r" % (title, g))
        else:
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        problems.append("%s overlaps %s" % (title, cells[(cx, cy)]))
                        break
                    cells[(cx, cy)] = title
                else:
                    continue
                break
        if (panel.get("datasource") or {}).get("type") != "prometheus":
            problems.append("%s: datasource %r" % (title, panel.get("datasource")))
        targets_ = panel.get("targets", [])
        if not targets_:
            problems.append("%s: no targets" % title)
        refs = set()
        for target in targets_:
            ref, raw = target.get("refId"), target.get("expr")
            if not ref or ref in refs:
                problems.append("%s: refId %r" % (title, ref))
            refs.add(ref)
            if not raw:
                problems.append("%s %s: no expr" % (title, ref))
                continue
            expr = substitute(raw, variables)
            if "$" in expr:
                problems.append("%s %s: a variable left in %r" % (title, ref, expr))
            for name, at in metric_names(expr):
                kind = metric_type(name)
                report["metrics"][name] = kind
                fn = enclosing_function(expr, at)
                cumulative = kind in ("counter", "histogram", "summary")
                if kind is None or kind.endswith(" family"):
                    problems.append("%s %s: Prometheus has no series named %s (%s)" % (title, ref, name, kind))
                elif cumulative and fn not in RATES:
                    problems.append("%s %s: %s %s read through %r" % (title, ref, kind, name, fn))
                elif not cumulative and fn in RATES:
                    problems.append("%s %s: %s %s through %s" % (title, ref, kind, name, fn))
            entry = {"panel": title, "refId": ref, "expr": expr, "series": 0, "error": None}
            try:
                entry["series"] = len(query(url, expr))
            except RuntimeError as e:
                entry["error"] = str(e)
            report["queries"].append(entry)
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q or "")
        if not m:
            problems.append("variable %s: query %r is not label_values(METRIC, LABEL)" % (var.get("name"), q))
            continue
        selector = substitute(m.group(1), variables)
        report["variables"][var.get("name")] = get(url, "/api/v1/label/%s/values" % m.group(2), {"match[]": selector})
    return report


def main():
    command, url = sys.argv[1], sys.argv[2]
    try:
        if command == "wait-up":
            t = wait_up(url, float(sys.argv[3]))
            print(json.dumps(t))
            return 0 if t else 1
        if command == "wait-scrapes":
            last = wait_scrapes(url, float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
            print(json.dumps({"last_scrape": last}))
            return 0 if last else 1
        if command == "query":
            print(json.dumps({"result": query(url, sys.argv[3])}))
            return 0
        if command == "dashboard":
            variables = dict(a.split("=", 1) for a in sys.argv[4:])
            print(json.dumps(dashboard(url, sys.argv[3], variables)))
            return 0
    except (OSError, RuntimeError, ValueError) as e:
        print("%s: %s" % (command, e), file=sys.stderr)
        return 1
    print("unknown command %r" % command, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
