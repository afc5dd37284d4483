#!/usr/bin/env python3
"""Runs tenjit's CPU benchmarks and the peers' (NumPy, JAX jit, torch eager/compile) back to back
on this machine and prints one markdown table with each peer's median and the ratio
best-peer / tenjit (above 1: tenjit is faster).

  bash ../shared/peers/setup_venv.sh          # once: the peers' CPU-only virtualenv
  $HOME/.cache/peers-venv/bin/python benches/side_by_side.py --only W1,W2,W3,W4,W7 --out bench.md
  $HOME/.cache/peers-venv/bin/python benches/side_by_side.py --only W5,W6,W7 --w7   # training; peers' cold first calls
  $HOME/.cache/peers-venv/bin/python benches/side_by_side.py --only W8,W10 --peers models_torch   # the GPT

The peers' scripts live in ../shared/peers; this script only runs them (their run_all.py) and
reads their JSON records next to tenjit's (`cargo bench --bench cpu`, `--bench train` and `--bench models`, each
with `-- --json FILE`). W7's first calls are compared by `first_call_s` (the peers measure them in a
fresh process each, as `benches/train.rs` does); `--w7` also runs the peers' cold W7 probes, which
take minutes (torch.compile's first call is ~13 s).
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
  ap.add_argument("--w7", action="store_true", help="also run the peers' cold W7 first-call probes")
  a = ap.parse_args()
  ours = tempfile.mktemp(suffix=".jsonl")
  for bench in ("cpu", "train", "models"):
    subprocess.run(["cargo", "bench", "--bench", bench, "--", "--json", ours, "--only", a.only], cwd=ROOT, check=True)
  theirs = tempfile.mktemp(suffix=".json")
  env = dict(os.environ, PEERS_QUIET_WAIT=os.environ.get("PEERS_QUIET_WAIT", "5"))
  subprocess.run([sys.executable, os.path.join(PEERS, "run_all.py"), "--json", theirs, "--only", a.only,
                  "--peers", a.peers, "--reps", a.reps] + ([] if a.w7 else ["--no-w7"]), env=env, check=True)
  with open(ours) as f:
    records = [json.loads(l) for l in f if l.strip()]
  with open(theirs) as f:
    records += json.load(f)["records"]
  table = {}
  for r in records:
    t = r.get("median_s") if r.get("median_s") is not None else r.get("first_call_s")
    if t is None or r.get("check") not in (None, "ok"):
      continue
    table.setdefault(r["workload"], {})[r.get("variant") or r["peer"]] = t
  variants = sorted({v for w in table.values() for v in w if not v.startswith("tenjit")})
  # tenjit's variants get a column each (W5/W6 run lazily and through tenjit::jit); the ratio
  # compares tenjit's best with the best peer.
  ours = sorted({v for w in table.values() for v in w if v.startswith("tenjit")})
  fmt = lambda s: "—" if s is None else (f"{s*1e3:.2f} ms" if s >= 1e-3 else f"{s*1e6:.1f} µs")
  lines = ["| workload | " + " | ".join(ours + variants) + " | best peer / best tenjit |",
           "|---|" + "---|" * (len(ours) + len(variants)) + "---|"]
  for w in sorted(table):
    row = table[w]
    mine = [row.get(v) for v in ours]
    peers = [row.get(v) for v in variants]
    t = min((s for s in mine if s), default=None)
    best = min((s for s in peers if s), default=None)
    ratio = f"{best / t:.2f}×" if (t and best) else "—"
    lines.append(f"| {w} | " + " | ".join(fmt(s) for s in mine + peers) + f" | {ratio} |")
  text = "\n".join(lines)
  print(text)
  if a.out:
    with open(a.out, "w") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
