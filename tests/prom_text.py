"""A strict parser of the Prometheus text exposition format 0.0.4, for the monitor's tests
(tests/test_monitor.sh, tests/test_metrics.sh): the one place that says what a valid
/metrics page of `shmbus monitor` is.

parse(text, bus) checks every line (HELP/TYPE before samples, each family in one block,
no duplicate series, counters named _total and finite, every series labelled with the
bus, client metrics with client and name labels, histograms cumulative with le ascending to
+Inf and _count equal to it) and returns (types, samples): types maps a family to its type,
samples maps (name, ((label, value), ...)) to the value. It raises ValueError naming the
first bad line.
"""
import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^({NAME})(?:\{{((?:{LABEL})(?:,{LABEL})*,?)?\}})? (\S+)(?: (-?[0-9]+))?$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def number(s):
    if s in ("+Inf", "-Inf", "NaN"):
        return float(s.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", s):
        raise ValueError(f"bad number {s!r}")
    return float(s)


def parse(text, bus):
    if not text.endswith("\n"):
        raise ValueError("does not end with a newline")
    helps, types, done, samples = {}, {}, set(), {}
    current = None
    hist = {}

    def family(name):
        for suf in ("_bucket", "_count", "_sum"):
            base = name[: -len(suf)]
            if name.endswith(suf) and types.get(base) in ("histogram", "summary"):
                return base
        return name

    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({NAME}) (.*)$", line)
            if not m:
                if not re.match(r"^#( |$)", line):
                    raise ValueError(where + " is not a comment")
                continue
            kind, name, rest = m.groups()
            if kind == "HELP":
                if name in helps or name in done:
                    raise ValueError(where + ": second HELP")
                if re.search(r"\\[^\\n]", rest):
                    raise ValueError(where + ": bad escape in HELP")
                helps[name] = rest
            else:
                if name in types or name in done:
                    raise ValueError(where + ": second TYPE, or TYPE after samples")
                if rest not in ("counter", "gauge", "histogram", "summary", "untyped"):
                    raise ValueError(where + ": unknown type")
                if rest == "counter" and not name.endswith("_total"):
                    raise ValueError(where + ": counter without _total")
                types[name] = rest
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(where + " is not a sample line")
        name, labels, value, _ = m.groups()
        v = number(value)
        fam = family(name)
        if fam != current:
            if fam in done:
                raise ValueError(where + f": family {fam} interleaved with another")
            if current:
                done.add(current)
            current = fam
        if fam not in types or fam not in helps:
            raise ValueError(where + f": no HELP/TYPE before samples of {fam}")
        lab = dict(LABEL_RE.findall(labels or ""))
        key = (name, tuple(sorted(lab.items())))
        if key in samples:
            raise ValueError(where + ": duplicate series")
        samples[key] = v
        if lab.get("bus") != bus:
            raise ValueError(where + ": no bus label for this bus")
        if fam.startswith("shmbus_client_") and not ("client" in lab and "name" in lab):
            raise ValueError(where + ": client metric without client/name labels")
        if types[fam] == "counter" and not (v >= 0 and math.isfinite(v)):
            raise ValueError(where + ": counter not a finite non-negative number")
        if types[fam] == "histogram":
            h = hist.setdefault(fam, {"le": [], "count": None, "sum": None})
            if name.endswith("_bucket"):
                h["le"].append((number(lab["le"]), v))
            elif name.endswith("_count"):
                h["count"] = v
            elif name.endswith("_sum"):
                h["sum"] = v
    for fam, h in hist.items():
        les = [le for le, _ in h["le"]]
        counts = [c for _, c in h["le"]]
        if not (les == sorted(les) and les and les[-1] == math.inf):
            raise ValueError(f"{fam}: le not ascending to +Inf")
        if not (counts == sorted(counts) and h["count"] == counts[-1]):
            raise ValueError(f"{fam}: not cumulative, or _count is not the +Inf bucket")
        if h["sum"] is None or not (h["sum"] >= 0 and math.isfinite(h["sum"])):
            raise ValueError(f"{fam}: no _sum, or not a finite number")
    return types, samples


def counters(types, samples, prefix=""):
    """The counter series (and histogram _count/_sum/_bucket) whose family starts with prefix."""
    out = {}
    for (name, labels), v in samples.items():
        fam = name
        for suf in ("_bucket", "_count", "_sum"):
            if name.endswith(suf) and types.get(name[: -len(suf)]) == "histogram":
                fam = name[: -len(suf)]
        if fam.startswith(prefix) and types.get(fam) in ("counter", "histogram"):
            out[(name, labels)] = v
    return out
