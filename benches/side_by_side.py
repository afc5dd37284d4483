#!/usr/bin/env python3
"""Runs tenjit's CPU benchmarks and the peers' (NumPy, JAX jit, torch eager/compile) back to back
on this machine and prints one markdown table with each peer's median and the ratio
best-peer / tenjit (above 1: tenjit is faster).

  bash ../shared/peers/setup_venv.sh          # once: the peers' CPU-only virtualenv
  $HOME/.cache/peers-venv/bin/python benches/side_by_side.py --only W1,W2,W3,W4,W7 --out bench.md

The peers' scripts live in ../shared/peers; this script only runs them (their run_all.py) and
reads their JSON records next to tenjit's (`cargo bench --bench cpu -- --json FILE`).
"""
import argparse, json, os, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS = os.path.normpath(os.path.join(ROOT, "..", "shared", "peers"))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--only", default="W1,W2,W3,W4")
  ap.add_argument("--peers", default="numpy,jax,torch")
  ap.add_argument("--reps", default="7")
  ap.add_argument("--out", default=None, help="also write the table to this file")
  a = ap.parse_args()
  ours = tempfile.mktemp(suffix=".jsonl")
  subprocess.run(["cargo", "bench", "--bench", "cpu", "--", "--json", ours, "--only", a.only], cwd=ROOT, check=True)
  theirs = tempfile.mktemp(suffix=".json")
  env = dict(os.environ, PEERS_QUIET_WAIT=os.environ.get("PEERS_QUIET_WAIT", "5"))
  subprocess.run([sys.executable, os.path.join(PEERS, "run_all.py"), "--json", theirs, "--only", a.only,
                  "--peers", a.peers, "--reps", a.reps, "--no-w7"], env=env, check=True)
  with open(ours) as f:
    records = [json.loads(l) for l in f if l.strip()]
  with open(theirs) as f:
    records += json.load(f)["records"]
  table = {}
  for r in records:
    if r.get("median_s") is None or r.get("check") not in (None, "ok"):
      continue
    table.setdefault(r["workload"], {})[r.get("variant") or r["peer"]] = r["median_s"]
  variants = sorted({v for w in table.values() for v in w if not v.startswith("tenjit")})
  lines = ["| workload | tenjit | " + " | ".join(variants) + " | best peer / tenjit |",
           "|---|---|" + "---|" * len(variants) + "---|"]
  for w in sorted(table):
    row = table[w]
    t = next((s for v, s in row.items() if v.startswith("tenjit")), None)
    peers = [row.get(v) for v in variants]
    best = min((s for s in peers if s), default=None)
    fmt = lambda s: "—" if s is None else (f"{s*1e3:.2f} ms" if s >= 1e-3 else f"{s*1e6:.1f} µs")
    ratio = f"{best / t:.2f}×" if (t and best) else "—"
    lines.append(f"| {w} | {fmt(t)} | " + " | ".join(fmt(s) for s in peers) + f" | {ratio} |")
  text = "\n".join(lines)
  print(text)
  if a.out:
    with open(a.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
