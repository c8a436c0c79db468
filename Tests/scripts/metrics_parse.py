#!/usr/bin/env python3
"""The oracle of vxmon's /metrics: Prometheus's own Python client library parses the exposition.

  metrics_parse.py file text|openmetrics PATH       parse a file
  metrics_parse.py url URL [text|openmetrics] [OUT]  scrape URL with urllib (asking for OpenMetrics
                                                      through Accept when told), save the body to OUT,
                                                      parse it as what the Content-Type says

Prints one JSON object: {"content_type": ..., "bytes": N, "families": [{"name", "type", "help",
"samples": [{"name", "labels", "value"}]}]}. The text format goes through
prometheus_client.parser, OpenMetrics through prometheus_client.openmetrics.parser (strict: `# EOF`,
counter suffixes, histogram buckets). Exits 1 with the parser's error on stderr when it refuses the input.
"""
import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families as text_families

OPENMETRICS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def parse(text, fmt):
    parser = om_families if fmt == "openmetrics" else text_families
    out = []
    for family in parser(text):
        out.append(
            {
                "name": family.name,
                "type": family.type,
                "help": family.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
            }
        )
    return out


def main():
    mode = sys.argv[1]
    if mode == "file":
        fmt, path = sys.argv[2], sys.argv[3]
        with open(path, encoding="utf-8") as f:
            text = f.read()
        content_type = None
    elif mode == "url":
        url = sys.argv[2]
        want = sys.argv[3] if len(sys.argv) > 3 else "text"
        request = urllib.request.Request(url)
        if want == "openmetrics":
            request.add_header("Accept", OPENMETRICS_ACCEPT)
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type")
        if len(sys.argv) > 4:
            with open(sys.argv[4], "wb") as f:
                f.write(body)
        text = body.decode("utf-8")
        fmt = "openmetrics" if content_type and content_type.startswith("application/openmetrics-text") else "text"
    else:
        print("usage: metrics_parse.py file FORMAT PATH | url URL [FORMAT] [OUT]", file=sys.stderr)
        return 2
    try:
        families = parse(text, fmt)
    except Exception as e:  # the parser's refusal is the finding
        print(f"{fmt} parser refused the exposition: {e!r}", file=sys.stderr)
        return 1
    print(json.dumps({"content_type": content_type, "bytes": len(text.encode()), "families": families}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
