#!/usr/bin/env python3
"""One line per GPU benchmark result of tools/gpu-bench.sh: the JSON files of OUT-DIR
(moewb bench --backend cuda, bench_gemv, the PyTorch peer) as a table short enough to read
at the end of a log, with the backend switches each run had that are not the default and the
launches their kernels took (cuda_launch_counts).

Usage: tools/gpu-summary.py OUT-DIR
"""
import json
import pathlib
import sys

# The backend's choices when no MOEWB_CUDA_* variable is set (docs/engine.md): a run lists only
# what differs from these.
DEFAULTS = {
    "attention": "pipelined",
    "decode_attention": "scalar",
    "early_launch": "trigger",
    "rope": "fused",
    "expert_gemm": "auto",
    "expert_streams": "4",
    "expert_pad": "64",
    "expert_parts": "stacked",
    "kv_cache": "f32",
    "weight_loads": "cached",
    "decode_blocks": "2",
    "decode_kernel": "launches",
    "decode_route": "launch",
}


def number(v, fmt):
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    out = pathlib.Path(sys.argv[1])
    rows = []
    for path in sorted(out.glob("*.json")):
        try:
            text = path.read_text()
        except OSError as e:
            rows.append((path.stem, f"unreadable: {e}"))
            continue
        if not text.strip():
            rows.append((path.stem, "no result (the run failed: see the log)"))
            continue
        try:
            doc = json.loads(text)
        except ValueError:
            # moewb bench writes one object per line for several configurations.
            try:
                docs = [json.loads(line) for line in text.splitlines() if line.strip()]
            except ValueError:
                rows.append((path.stem, "not JSON"))
                continue
            doc = docs[-1] if docs else {}
        if "results" in doc:  # bench_gemv
            rows.append((path.stem, "  ".join(f"{r['variant']} {r['gb_s']:.0f} GB/s" for r in doc["results"])))
            continue
        switches = doc.get("cuda_switches") or {}
        changed = " ".join(f"{k}={v}" for k, v in switches.items() if DEFAULTS.get(k) != v)
        # What the switches' kernels did take (a switch asked for and not used shows as nothing).
        counts = doc.get("cuda_launch_counts") or {}
        took = " ".join(f"{k} {v}" for k, v in counts.items() if v)
        rows.append((
            path.stem,
            f"prefill {number(doc.get('prefill_tok_s'), '.0f')} tok/s"
            f" ({number(doc.get('prefill_peak_ratio'), '.3f')} of peak)"
            f"  decode {number(doc.get('decode_tok_s'), '.1f')} tok/s"
            f" ({number(doc.get('decode_bandwidth_ratio'), '.3f')} of limit)"
            + (f"  observed {number(doc.get('observer_prefill_ratio'), '.3f')}/{number(doc.get('observer_decode_ratio'), '.3f')}"
               if "observer_prefill_ratio" in doc else "")
            + (f"  scored {number(doc.get('scored_prefill_tok_s'), '.0f')} / on the host"
               f" {number(doc.get('host_scored_prefill_tok_s'), '.0f')} tok/s"
               f" ({number(doc.get('scored_prefill_speedup'), '.2f')}x)"
               if "scored_prefill_tok_s" in doc else "")
            + (f"  activations {doc['activations']}" if "activations" in doc else "")
            + (f"  [{changed}]" if changed else "")
            + (f"  launched: {took}" if took else ""),
        ))
    width = max((len(name) for name, _ in rows), default=0)
    for name, line in rows:
        print(f"{name:<{width}}  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
