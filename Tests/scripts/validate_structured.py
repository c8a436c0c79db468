#!/usr/bin/env python3
"""Validate vxmon's structured output (JSON/YAML) against docs/event-schema.json.

    validate_structured.py DIR [--schema docs/event-schema.json] [--cilium VECTORS_DIR]

For every DIR/NAME.json (NDJSON, one event per line):
  * every line parses as JSON, with no duplicate keys in any object, and validates against the schema
    (JSON Schema draft 2020-12, with format checks for ipv4/ipv6);
  * `jq -c .` parses the whole file and yields the same objects, line for line.
For every DIR/NAME.yaml next to it:
  * yaml.safe_load_all yields exactly the JSON objects of NAME.json, in order (no duplicate keys).
With --cilium, for every NAME.json that has a VECTORS_DIR/NAME.j.txt (what Cilium 1.13's
`cilium monitor -j` printed for the same recording), the fields both carry must agree:
  trace:   mark->hash, source->endpoint, bytes->bytes, srcLabel->source.identity,
           dstLabel->destination.identity, dstID->destination.ID (proxy_port for to-proxy),
           observationPoint->subtype, cpu, ifindex->interface.index;
  drop:    mark->hash, source->endpoint, bytes, srcLabel/dstLabel/dstID, Line->line, File->file,
           ExtError->ext_error, Ifindex->interface.index, reason->drop_reason_desc (+ ", ext" when ext != 0);
  debug:   message->message;
  capture: mark->hash, source->endpoint, bytes, message->message, prefix->prefix, summary->summary.
Events vxmon deliberately does not print (decode errors, README difference 3) are skipped.

Exit status 0 when everything holds, 1 otherwise; every problem is printed.
"""
import argparse
import json
import os
import subprocess
import sys

import jsonschema
import yaml


class DuplicateKey(ValueError):
    pass


def no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise DuplicateKey("duplicate key %r" % k)
        obj[k] = v
    return obj


BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(BaseLoader):
    """SafeLoader (libyaml when available) that rejects duplicate mapping keys (PyYAML keeps the last one)."""


def _construct_mapping(loader, node, deep=False):
    keys = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in keys:
            raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % (key,), key_node.start_mark)
        keys.add(key)
    return BaseLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class Report:
    """Counts problems; prints the first three of each kind per file, then a count of the rest."""

    def __init__(self):
        self.problems = 0
        self.kinds = {}
        self.warnings = {}
        self.checked = {"json lines": 0, "yaml documents": 0, "cilium events": 0}

    def fail(self, where, message, kind=None):
        self.problems += 1
        key = (where.split(":")[0].split(" ")[0], kind or message)
        self.kinds[key] = self.kinds.get(key, 0) + 1
        if self.kinds[key] <= 3:
            print("FAIL %s: %s" % (where, message))

    def warn(self, where, message, kind):
        self.warnings[kind] = self.warnings.get(kind, 0) + 1
        if self.warnings[kind] == 1:
            print("WARN %s: %s" % (where, message))

    def summary(self):
        for kind, count in sorted(self.warnings.items()):
            print("  warning, %d times: %s" % (count, kind))
        for (where, kind), count in sorted(self.kinds.items()):
            if count > 3:
                print("  ... %s: %d problems of this kind in total: %s" % (where, count, kind[:120]))


def check_json(path, validator, validators, report):
    objects = []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        report.fail(path, "output does not end with a newline")
    for n, line in enumerate(text.splitlines(), 1):
        where = "%s:%d" % (os.path.basename(path), n)
        try:
            obj = json.loads(line, object_pairs_hook=no_duplicates)
        except DuplicateKey as e:
            # Reported, then checked further as any JSON reader would see it (the last value wins).
            report.fail(where, "%s in one object: %s" % (e, line[:300]), kind=str(e))
            obj = json.loads(line)
        except ValueError as e:
            report.fail(where, "not valid JSON (%s): %s" % (e, line[:300]))
            objects.append(None)
            continue
        report.checked["json lines"] += 1
        if validator.is_valid(obj):
            objects.append(obj)
            continue
        # Explain against the record type's own definition rather than the top-level oneOf.
        typed = validators.get(obj.get("type") if isinstance(obj, dict) else None, validator)
        errors = list(typed.iter_errors(obj)) or list(validator.iter_errors(obj))
        for error in sorted(errors, key=lambda e: list(e.absolute_path)):
            if error.context:
                error = jsonschema.exceptions.best_match(error.context)
            path = "/".join(map(str, error.absolute_path))
            report.fail(where, "schema: %s at /%s" % (error.message[:300], path),
                        kind="schema: %s at %s" % (error.validator, "/".join(p if isinstance(p, str) else "N" for p in error.absolute_path)))
        objects.append(obj)
    # jq must parse the same stream.
    try:
        jq = subprocess.run(["jq", "-c", "."], input=text, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        report.fail(path, "jq is not installed")
        return objects
    if jq.returncode != 0:
        report.fail(path, "jq failed: %s" % jq.stderr.strip()[:300])
    else:
        jq_objects = [json.loads(l) for l in jq.stdout.splitlines()]
        if len(jq_objects) != len(objects):
            report.fail(path, "jq read %d values, expected %d" % (len(jq_objects), len(objects)))
        for n, (a, b) in enumerate(zip(jq_objects, objects), 1):
            if b is None or a == b:
                continue
            where = "%s:%d" % (os.path.basename(path), n)
            for p, mine, theirs in differences(b, a):
                if isinstance(mine, int) and not isinstance(mine, bool) and abs(mine) > 2 ** 53 and isinstance(theirs, (int, float)) and float(mine) == float(theirs):
                    # jq 1.6 keeps numbers as IEEE doubles: it parses the line but rounds the integer.
                    report.warn(where, "%s = %d is beyond 2^53; jq reads %r" % (p, mine, theirs), kind="integer beyond 2^53 at " + p)
                else:
                    report.fail(where, "jq reads %s as %r, expected %r" % (p, theirs, mine))
    return objects


def differences(a, b, path=""):
    """(path, a value, b value) for every leaf where a and b differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in set(a) | set(b):
            yield from differences(a.get(k), b.get(k), path + "/" + k)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from differences(x, y, "%s/%d" % (path, i))
    elif a != b or type(a) is not type(b):
        yield path or "/", a, b


def read_yaml(path, report):
    """The documents of a YAML file, read strictly (a duplicate key is reported, then read leniently);
    None when it is not YAML at all (reported)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return list(yaml.load_all(text, Loader=StrictLoader))
    except yaml.constructor.ConstructorError as e:
        report.fail(path, "YAML: %s" % str(e)[:300])
        return list(yaml.load_all(text, Loader=BaseLoader))
    except yaml.YAMLError as e:
        report.fail(path, "not valid YAML: %s" % str(e)[:300])
        return None


def check_yaml(path, objects, report):
    docs = read_yaml(path, report)
    if docs is None:
        return
    report.checked["yaml documents"] += len(docs)
    if len(docs) != len(objects):
        report.fail(path, "%d YAML documents, %d JSON lines" % (len(docs), len(objects)))
    for n, (d, o) in enumerate(zip(docs, objects), 1):
        if o is not None and d != o:
            diff = [k for k in set(d or {}) | set(o) if (d or {}).get(k) != o.get(k)] if isinstance(d, dict) else "not a mapping"
            report.fail("%s doc %d" % (os.path.basename(path), n), "YAML document differs from the JSON object: %s" % diff)


def cilium_objects(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def dig(obj, *keys):
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def check_cilium(name, ours, theirs, report):
    """Compares vxmon's objects with Cilium's -j objects of the same recording."""
    ours = [o for o in ours if o is not None and o.get("type") != "lost"]
    theirs = [t for t in theirs if t.get("type") in ("trace", "drop", "debug", "capture")]
    if name == "trace_unknown_version":
        # README difference 3: vxmon reports the broken event on stderr and prints nothing.
        if ours:
            report.fail(name, "vxmon printed %d objects for an undecodable event" % len(ours))
        return
    ours = [o for o in ours if o.get("type") in ("trace", "drop", "debug", "capture")]
    if len(ours) != len(theirs):
        report.fail(name, "vxmon has %d trace/drop/debug/capture objects, Cilium %d" % (len(ours), len(theirs)))
        return
    for n, (o, t) in enumerate(zip(ours, theirs), 1):
        where = "%s event %d" % (name, n)
        report.checked["cilium events"] += 1

        def same(label, mine, cilium):
            if mine != cilium:
                report.fail(where, "%s: vxmon %r, cilium %r" % (label, mine, cilium))

        same("type", o.get("type"), t.get("type"))
        if "cpu" in t:
            same("cpu", "CPU %02d:" % o.get("cpu", -1), t["cpu"])
        typ = t.get("type")
        if typ in ("trace", "drop", "capture"):
            same("mark/hash", o.get("hash"), t.get("mark"))
            same("source/endpoint", o.get("endpoint"), t.get("source"))
            same("bytes", o.get("bytes"), t.get("bytes"))
        if typ == "trace":
            same("srcLabel", dig(o, "source", "identity"), t.get("srcLabel"))
            same("dstLabel", dig(o, "destination", "identity"), t.get("dstLabel"))
            if t.get("observationPoint") == "to-proxy":
                same("dstID/proxy_port", o.get("proxy_port"), t.get("dstID"))
            else:
                same("dstID", dig(o, "destination", "ID"), t.get("dstID"))
            same("observationPoint/subtype", o.get("subtype"), t.get("observationPoint"))
            same("ifindex", str(dig(o, "interface", "index")), t.get("ifindex"))
        elif typ == "drop":
            same("srcLabel", dig(o, "source", "identity"), t.get("srcLabel"))
            same("dstLabel", dig(o, "destination", "identity"), t.get("dstLabel"))
            same("dstID", dig(o, "destination", "ID"), t.get("dstID"))
            same("Line", o.get("line"), t.get("Line"))
            same("File", o.get("file"), t.get("File"))
            same("ExtError", o.get("ext_error"), t.get("ExtError"))
            same("Ifindex", dig(o, "interface", "index"), t.get("Ifindex"))
            desc = o.get("drop_reason_desc")
            reason = desc if desc is not None else str(o.get("drop_reason"))
            ext = o.get("ext_error", 0)
            if ext != 0 or desc is None:
                reason += ", %d" % ext
            same("reason", reason, t.get("reason"))
        elif typ == "debug":
            same("message", o.get("message"), t.get("message"))
        elif typ == "capture":
            same("message", o.get("message"), t.get("message"))
            same("prefix", o.get("prefix"), t.get("prefix"))
            same("summary", o.get("summary"), t.get("summary"))


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="directory of NAME.json / NAME.yaml files")
    ap.add_argument("--schema", default=os.path.join(here, "..", "..", "docs", "event-schema.json"))
    ap.add_argument("--cilium", help="directory holding Cilium's NAME.j.txt outputs")
    a = ap.parse_args(argv)

    with open(a.schema, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    validator = jsonschema.Draft202012Validator(schema, format_checker=checker)
    validators = {}
    for key in schema.get("$defs", {}):
        if key.startswith("record_"):
            typed = dict(schema, allOf=[{"$ref": "#/$defs/" + key}])
            validators[key[len("record_"):]] = jsonschema.Draft202012Validator(typed, format_checker=checker)

    report = Report()
    names = sorted(f[:-5] for f in os.listdir(a.dir) if f.endswith(".json"))
    if not names:
        report.fail(a.dir, "no .json files")
    for name in names:
        objects = check_json(os.path.join(a.dir, name + ".json"), validator, validators, report)
        ypath = os.path.join(a.dir, name + ".yaml")
        if os.path.exists(ypath):
            check_yaml(ypath, objects, report)
        else:
            report.fail(ypath, "missing")
        if a.cilium:
            jpath = os.path.join(a.cilium, name + ".j.txt")
            if os.path.exists(jpath):
                check_cilium(name, objects, cilium_objects(jpath), report)

    report.summary()
    print("checked %d files: %s" % (len(names), ", ".join("%d %s" % (v, k) for k, v in report.checked.items())))
    if report.problems:
        print("%d problem(s)" % report.problems)
        return 1
    print("all structured output valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
