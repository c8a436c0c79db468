#!/usr/bin/env python3
"""Check a `vxmon journey --svg/--html` drawing against the journeys of the same run (`-o json`), and
chromium's screenshots of it.

    check_journey_svg.py --svg X.svg [--json X.json] [--html X.html] [--exchanges N]
                         [--png FILE:DX:DY ...] [--max-lanes N] [--max-hop-labels N]

The SVG is parsed with xml.etree (well-formed XML), and:
  * the root is an <svg> with numeric width and height, a viewBox "0 0 width height", font-family
    monospace, and a white rect covering it all;
  * only drawing elements are present (no script, foreignObject, image, a, use, style), no attribute
    names an event handler or a URL, and the raw bytes of the SVG (and the HTML) hold no "<script";
With --json (NDJSON `{"journey": ...}` lines of the same run; the exchanges are the journeys in order,
a reply after its request), for the first N exchanges (all without --exchanges):
  * a lane per node: a <text> whose text is the node name (controls and bidi characters shown as "?")
    over a rect;
  * per journey, a <text> starting "#<id> ", then for every hop, in order and going down, a <text>
    "<point> <interface>" (interface: its name, `if<N>` when JSON has none, nothing for ifindex 0)
    whose x is that node's lane ±11;
  * for every hop after the first, a <text> that is exactly "+" + Go's time.Duration.String() of the
    JSON delta_ns, formatted here independently;
  * every dropped journey: a <text> holding the drop reason, filled red, with a red stroked or filled
    element within 30 px of its anchor;
  * every lost or unfinished journey: a <text> "<outcome> after ..." in grey, and a dashed element;
  * the exchanges after N are not drawn (no "#<id> " heading).
With --html: the page parses (html.parser) with no script element, no on* attribute, a <title>, and
exactly one <svg>, whose text is the SVG file's.
Each --png FILE:DX:DY is a screenshot of the drawing placed at (DX, DY): decoded here (zlib, PNG
filters), it must not be blank, every lane's rect must show its fill colour at its left edge, and
red pixels must be near each drop's red element.

Exit status 0 when everything holds, 1 otherwise; every problem is printed.
"""
import argparse
import html.parser
import json
import re
import struct
import sys
import unicodedata
import xml.etree.ElementTree as ET
import zlib

SVG = "{http://www.w3.org/2000/svg}"
ALLOWED = {"svg", "title", "desc", "g", "rect", "line", "polyline", "polygon", "circle", "ellipse", "path", "text", "tspan"}
problems = []


def problem(msg):
    problems.append(msg)


def go_duration(ns):
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    neg = ns < 0
    u = -ns if neg else ns

    def frac(v, prec):
        whole, part = divmod(v, 10**prec)
        digits = str(part).rjust(prec, "0").rstrip("0")
        return str(whole) + ("." + digits if digits else "")

    if u < 1000:
        s = "%dns" % u
    elif u < 1000_000:
        s = frac(u, 3) + "µs"
    elif u < 1000_000_000:
        s = frac(u, 6) + "ms"
    else:
        minutes, rest = divmod(u, 60 * 1000_000_000)
        hours, minutes = divmod(minutes, 60)
        s = frac(rest, 9) + "s"
        if hours or minutes:
            s = "%dm" % minutes + s
        if hours:
            s = "%dh" % hours + s
    return ("-" if neg else "") + s


def shown(name):
    """What a drawing may show of a name from outside: controls and format characters as '?'."""
    return "".join("?" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in name)


def color(value):
    if not value:
        return None
    value = value.strip().lower()
    if value in ("red",):
        return (255, 0, 0)
    m = re.fullmatch(r"#([0-9a-f]{6})", value)
    if m:
        h = m.group(1)
        return tuple(int(h[i : i + 2], 16) for i in (0, 2, 4))
    m = re.fullmatch(r"#([0-9a-f]{3})", value)
    if m:
        return tuple(int(c * 2, 16) for c in m.group(1))
    return None


def is_red(c):
    return c is not None and c[0] >= 170 and c[1] <= 90 and c[2] <= 90


def is_grey(c):
    return c is not None and max(c) - min(c) <= 40 and 90 <= c[0] <= 200


def numbers(s):
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", s or "")]


def anchor_points(el):
    """Points an element is drawn through (enough to say where it is)."""
    tag = el.tag.replace(SVG, "")
    a = el.attrib
    if tag == "line":
        return [(float(a["x1"]), float(a["y1"])), (float(a["x2"]), float(a["y2"]))]
    if tag in ("circle", "ellipse"):
        return [(float(a["cx"]), float(a["cy"]))]
    if tag == "rect":
        x, y, w, h = (float(a.get(k, 0)) for k in ("x", "y", "width", "height"))
        return [(x, y), (x + w, y + h), (x + w / 2, y + h / 2)]
    if tag in ("polygon", "polyline"):
        n = numbers(a.get("points"))
        return list(zip(n[0::2], n[1::2]))
    if tag == "path":
        n = numbers(a.get("d"))
        return list(zip(n[0::2], n[1::2]))
    return []


def paint(el, attr):
    return color(el.attrib.get(attr))


def text_of(el):
    return "".join(el.itertext())


# ---------------------------------------------------------------------------------------------------
# PNG, read with zlib only.


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos = 8
    idat = b""
    width = height = depth = ctype = interlace = None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if depth != 8 or ctype not in (0, 2, 4, 6) or interlace != 0:
        raise ValueError("unsupported PNG (depth %s, colour type %s, interlace %s)" % (depth, ctype, interlace))
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows = []
    prev = bytearray(stride)
    p = 0
    for _ in range(height):
        f = raw[p]
        line = bytearray(raw[p + 1 : p + 1 + stride])
        p += 1 + stride
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        elif f != 0:
            raise ValueError("bad PNG filter %d" % f)
        rows.append(line)
        prev = line

    def pixel(x, y):
        if not (0 <= x < width and 0 <= y < height):
            return None
        o = x * bpp
        r = rows[y]
        if ctype in (0, 4):
            return (r[o], r[o], r[o])
        return (r[o], r[o + 1], r[o + 2])

    return width, height, pixel


# ---------------------------------------------------------------------------------------------------


def check_svg(path):
    raw = open(path, "rb").read()
    if b"<script" in raw.lower():
        problem("%s: raw <script in the SVG" % path)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as e:
        problem("%s: not well-formed XML: %s" % (path, e))
        return None
    if root.tag != SVG + "svg":
        problem("root element is %s, not svg" % root.tag)
        return None
    try:
        w = float(root.attrib["width"])
        h = float(root.attrib["height"])
    except (KeyError, ValueError):
        problem("the svg has no numeric width/height: %r" % root.attrib)
        return None
    vb = numbers(root.attrib.get("viewBox"))
    if vb != [0, 0, w, h]:
        problem("viewBox %r is not 0 0 %s %s" % (root.attrib.get("viewBox"), w, h))
    if root.attrib.get("font-family") != "monospace":
        problem("font-family is %r, not monospace" % root.attrib.get("font-family"))
    rects = root.findall(".//" + SVG + "rect")
    if not any(
        float(r.attrib.get("x", 0)) <= 0
        and float(r.attrib.get("y", 0)) <= 0
        and float(r.attrib.get("width", 0)) >= w
        and float(r.attrib.get("height", 0)) >= h
        and paint(r, "fill") == (255, 255, 255)
        for r in rects
    ):
        problem("no white background rect covering %sx%s" % (w, h))
    for el in root.iter():
        tag = el.tag.replace(SVG, "")
        if not el.tag.startswith(SVG) or tag not in ALLOWED:
            problem("element %s is not a drawing element" % el.tag)
        for k, v in el.attrib.items():
            if k.lower().startswith("on") or "href" in k.lower() or "url(" in v.lower() or "javascript" in v.lower():
                problem("attribute %s=%r on %s" % (k, v, tag))
    return root, w, h


def texts(root):
    out = []
    for el in root.iter(SVG + "text"):
        out.append(
            {
                "el": el,
                "text": text_of(el),
                "x": float(el.attrib.get("x", 0)),
                "y": float(el.attrib.get("y", 0)),
                "fill": paint(el, "fill"),
            }
        )
    return out


def exchanges_of(journeys):
    out = []
    for j in journeys:
        if j["role"] == "reply" and out and out[-1][0].get("paired_with") == j["id"] and out[-1][0]["role"] == "request":
            out[-1].append(j)
        else:
            out.append([j])
    return out


def check_journeys(root, journeys, n_drawn, lane_x_out):
    ts = texts(root)
    by_text = {}
    for i, t in enumerate(ts):
        by_text.setdefault(t["text"], []).append(i)
    exchanges = exchanges_of(journeys)
    drawn = exchanges if n_drawn is None else exchanges[:n_drawn]
    hidden = [] if n_drawn is None else exchanges[n_drawn:]
    # Lanes: a text naming the node over a rect; its x is the lane's.
    rects = [anchor_points(r) for r in root.iter(SVG + "rect")]
    lane_x = {}
    for ex in drawn:
        for j in ex:
            for hop in j["hops"]:
                node = hop["node"]
                if node is None or node in lane_x:
                    continue
                name = shown(node)
                cands = [ts[i] for i in by_text.get(name, [])]
                on_rect = [
                    t for t in cands
                    if any(r[0][0] <= t["x"] <= r[1][0] and r[0][1] <= t["y"] <= r[1][1] for r in rects)
                ]
                if not on_rect:
                    problem("no lane label %r on a rect" % name)
                    continue
                lane_x[node] = on_rect[0]["x"]
    lane_x_out.update(lane_x)
    if len(set(lane_x.values())) != len(lane_x):
        problem("two nodes share a lane: %r" % lane_x)
    # Journeys.
    for ex in drawn:
        for j in ex:
            heads = [i for i, t in enumerate(ts) if t["text"].startswith("#%d " % j["id"]) or t["text"].startswith("#%d:" % j["id"])]
            if not heads:
                problem("journey #%d: no heading" % j["id"])
                continue
            k = heads[0]
            last_y = ts[k]["y"]
            for n, hop in enumerate(j["hops"]):
                iface = hop["interface"]
                if iface is None:
                    iface = "if%d" % hop["ifindex"] if hop["ifindex"] else ""
                label = hop["point"] + (" " + shown(iface) if iface else "")
                found = None
                for i in range(k + 1, len(ts)):
                    if ts[i]["text"] == label or ts[i]["text"].endswith(": " + label):
                        found = i
                        break
                if found is None:
                    problem("journey #%d hop %d: no label %r after the one before" % (j["id"], n, label))
                    break
                t = ts[found]
                if t["y"] <= last_y:
                    problem("journey #%d hop %d: label %r at y %s is not below the one before (%s)" % (j["id"], n, label, t["y"], last_y))
                if hop["node"] in lane_x and abs(abs(t["x"] - lane_x[hop["node"]]) - 11) > 0.5:
                    problem("journey #%d hop %d: label %r at x %s is not beside lane %r (x %s)" % (j["id"], n, label, t["x"], hop["node"], lane_x[hop["node"]]))
                last_y = t["y"]
                k = found
                if n > 0:
                    want = "+" + go_duration(hop["delta_ns"])
                    if want not in by_text:
                        problem("journey #%d hop %d: no latency label %r (delta_ns %d)" % (j["id"], n, want, hop["delta_ns"]))
            if j["outcome"] == "dropped":
                reason = j.get("drop_reason")
                cands = [t for t in ts if reason and reason in t["text"]]
                if not cands:
                    problem("journey #%d: no text with the drop reason %r" % (j["id"], reason))
                for t in cands:
                    if not is_red(t["fill"]):
                        problem("journey #%d: drop reason %r is not red (%r)" % (j["id"], t["text"], t["el"].attrib.get("fill")))
                    near = False
                    for el in root.iter():
                        if el.tag in (SVG + "text", SVG + "tspan"):
                            continue
                        if not (is_red(paint(el, "stroke")) or is_red(paint(el, "fill"))):
                            continue
                        if any(abs(px - t["x"]) <= 30 and abs(py - t["y"]) <= 30 for px, py in anchor_points(el)):
                            near = True
                    if not near:
                        problem("journey #%d: nothing red drawn near the drop reason at (%s, %s)" % (j["id"], t["x"], t["y"]))
            if j["outcome"] in ("lost", "unfinished"):
                cands = [t for t in ts if t["text"].startswith(j["outcome"] + " after ")]
                if not cands or not all(is_grey(t["fill"]) for t in cands):
                    problem("journey #%d: no grey %r text" % (j["id"], j["outcome"] + " after ..."))
                if not any("stroke-dasharray" in el.attrib and is_grey(paint(el, "stroke")) for el in root.iter()):
                    problem("journey #%d: no grey dashed element" % j["id"])
    for ex in hidden:
        for j in ex:
            if any(t["text"].startswith("#%d " % j["id"]) or t["text"].startswith("#%d:" % j["id"]) for t in ts):
                problem("journey #%d is past --draw but drawn" % j["id"])


class PageParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.bad = []
        self.title = ""
        self.in_title = False
        self.svg_depth = 0
        self.svg_text = []
        self.in_svg_text = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k.startswith("on") or "javascript" in (v or "").lower():
                self.bad.append("%s %s=%r" % (tag, k, v))
        if tag == "title" and self.svg_depth == 0:
            self.in_title = True
        if tag == "svg":
            self.svg_depth += 1
        if tag == "text" and self.svg_depth:
            self.in_svg_text += 1
            self.svg_text.append("")

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag == "svg":
            self.svg_depth -= 1
        if tag == "text" and self.in_svg_text:
            self.in_svg_text -= 1

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if self.in_svg_text:
            self.svg_text[-1] += data


def check_html(path, svg_root):
    raw = open(path, "rb").read()
    if b"<script" in raw.lower():
        problem("%s: raw <script in the HTML" % path)
    p = PageParser()
    p.feed(raw.decode("utf-8"))
    p.close()
    if "script" in p.tags or "iframe" in p.tags or "img" in p.tags or "object" in p.tags:
        problem("HTML has script/iframe/img/object elements: %r" % sorted(set(p.tags)))
    if p.bad:
        problem("HTML has event handler or javascript attributes: %r" % p.bad)
    if not p.title.strip():
        problem("HTML has no title")
    if p.tags.count("svg") != 1:
        problem("HTML holds %d svg elements, not 1" % p.tags.count("svg"))
    if svg_root is not None:
        want = [text_of(t) for t in svg_root.iter(SVG + "text")]
        if p.svg_text != want:
            problem("the HTML's SVG texts differ from the SVG file's (%d vs %d)" % (len(p.svg_text), len(want)))


def check_png(spec, root, w, h, lane_x):
    path, dx, dy = spec.rsplit(":", 2)
    dx, dy = int(dx), int(dy)
    try:
        pw, ph, pixel = read_png(path)
    except (OSError, ValueError, zlib.error) as e:
        problem("%s: %s" % (path, e))
        return
    ink = 0
    for y in range(0, ph, 2):
        for x in range(0, pw, 2):
            p = pixel(x, y)
            if min(p) < 200:
                ink += 1
    # Half the pixels sampled in each direction: ink counts a quarter of them.
    if ink * 4 < 2000:
        problem("%s: nearly blank (%d sampled dark pixels)" % (path, ink))
    print("%s: %dx%d, about %d dark pixels" % (path, pw, ph, ink * 4))
    # Lane name rects show their fill at their left edge (inside, clear of the text).
    for r in root.iter(SVG + "rect"):
        fill = paint(r, "fill")
        x, y, rw, rh = (float(r.attrib.get(k, 0)) for k in ("x", "y", "width", "height"))
        cx = x + rw / 2
        if fill is None or not any(abs(cx - lx) < 1 for lx in lane_x.values()) or rh > 40:
            continue
        px, py = int(round(x + 4 + dx)), int(round(y + rh / 2 + dy))
        if px >= pw or py >= ph:
            continue
        got = pixel(px, py)
        if max(abs(a - b) for a, b in zip(got, fill)) > 24:
            problem("%s: lane rect at (%d, %d) shows %r, not its fill %r" % (path, px, py, got, fill))
    # Red near every red element drawn (drops).
    for el in root.iter():
        if el.tag in (SVG + "text", SVG + "tspan") or not (is_red(paint(el, "stroke")) or is_red(paint(el, "fill"))):
            continue
        pts = anchor_points(el)
        if not pts:
            continue
        cx = sum(p[0] for p in pts) / len(pts) + dx
        cy = sum(p[1] for p in pts) / len(pts) + dy
        if cx >= pw - 8 or cy >= ph - 8:
            continue
        red = sum(
            1
            for yy in range(int(cy) - 8, int(cy) + 9)
            for xx in range(int(cx) - 8, int(cx) + 9)
            if pixel(xx, yy) is not None and is_red(pixel(xx, yy))
        )
        if red < 3:
            problem("%s: no red pixels near the red %s at (%d, %d)" % (path, el.tag.replace(SVG, ""), cx, cy))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--svg", required=True)
    ap.add_argument("--json")
    ap.add_argument("--html")
    ap.add_argument("--exchanges", type=int)
    ap.add_argument("--png", action="append", default=[])
    ap.add_argument("--max-lanes", type=int)
    ap.add_argument("--max-hop-labels", type=int)
    ap.add_argument("--expect-text", action="append", default=[], help="a <text> whose text contains this")
    args = ap.parse_args()

    got = check_svg(args.svg)
    root, w, h = got if got else (None, 0, 0)
    lane_x = {}
    if root is not None:
        ts = texts(root)
        if args.json:
            journeys = []
            for line in open(args.json, encoding="utf-8"):
                if line.strip():
                    obj = json.loads(line)
                    if "journey" in obj:
                        journeys.append(obj["journey"])
            if not journeys:
                problem("%s: no journeys" % args.json)
            check_journeys(root, journeys, args.exchanges, lane_x)
        lane_rects = [
            t for t in ts
            if t["text"] and any(
                abs(float(r.attrib.get("x", 0)) + float(r.attrib.get("width", 0)) / 2 - t["x"]) < 1
                and float(r.attrib.get("y", 0)) <= t["y"] <= float(r.attrib.get("y", 0)) + float(r.attrib.get("height", 0))
                for r in root.iter(SVG + "rect")
            )
        ]
        if args.max_lanes is not None:
            xs = {t["x"] for t in lane_rects}
            if len(xs) > args.max_lanes:
                problem("%d lanes drawn, more than %d" % (len(xs), args.max_lanes))
            print("lanes: %d" % len(xs))
        if args.max_hop_labels is not None:
            n = sum(1 for t in ts if re.match(r"^(.*: )?(from|to)-\S+", t["text"]))
            if n > args.max_hop_labels:
                problem("%d hop labels drawn, more than %d" % (n, args.max_hop_labels))
            print("hop labels: %d" % n)
        for want in args.expect_text:
            if not any(want in t["text"] for t in ts):
                problem("no text containing %r" % want)
    if args.html:
        check_html(args.html, root)
    if root is not None:
        for spec in args.png:
            check_png(spec, root, w, h, lane_x)
    for p in problems:
        print("PROBLEM: " + p)
    print("%s: %s" % (args.svg, "ok" if not problems else "%d problems" % len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
