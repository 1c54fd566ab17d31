#!/bin/bash
# Hyper-parameter sweep, one parallel run per line of JOBSFILE (name|config|overrides); choose on validation only.
# Usage: BASE=RUN_DIR_WITH_PREPARE_EMBED_QUANTIZE_ARTIFACTS bash benchmarks/sweep.sh JOBSFILE OUTDIR [TIMEOUT_S]
set -u
JOBS=$1; OUTD=$2; TO=${3:-480}
W=/tmp/sweepwork; rm -rf $W; mkdir -p $W $OUTD
export PYTHONPATH=${PYTHONPATH:-}:$PWD/src PYTHONUNBUFFERED=1
while IFS='|' read -r name cfg overrides; do
  [ -z "$name" ] && continue
  d=$W/$name; cp -r ${BASE:-.sweep/base} $d
  ( timeout $TO python3 -c 'from sidrec.cli import app; app()' train $cfg $overrides train.threads=1 --out $d > $d/log.txt 2>&1 &&
    timeout 120 python3 -c 'from sidrec.cli import app; app()' evaluate $cfg $overrides train.threads=1 --out $d >> $d/log.txt 2>&1;
    echo "exit $?" >> $d/log.txt ) &
done < $JOBS
wait
python3 - $W $OUTD <<'PY'
import json, sys, pathlib
w, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
res = {}
for d in sorted(w.iterdir()):
    r = {"log_tail": (d / "log.txt").read_text(errors="replace")[-1500:]}
    for f in ("metrics.json", "train_summary.json"):
        if (d / f).exists(): r[f] = json.loads((d / f).read_text())
    if (d / "train_log.jsonl").exists():
        r["curve"] = [json.loads(l) for l in (d / "train_log.jsonl").read_text().splitlines() if l.strip()]
    res[d.name] = r
(out / "sweep.json").write_text(json.dumps(res, indent=1))
PY
