"""The learned repeat bias of RPG's item softmax (`model.rpg.repeat_bias`) on synthetic batches: one where every
target is one of the user's last three items, one where no target repeats. The tests check the sign
(tests/models/test_rpg.py); this records the values.

    python benchmarks/repeat_bias_synthetic.py --record benchmarks/results/repeat_bias_synthetic.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "models")]

import id_contract  # noqa: E402  (the tests' helpers: the same batches and training loop as the tests)
from test_rpg import N, tiny  # noqa: E402

from conftest import random_id_batch  # noqa: E402
from sidrec import io  # noqa: E402
from sidrec.models.rpg import RPG  # noqa: E402
from sidrec.report import git_commit, machine  # noqa: E402


def learned_bias(repeats: bool) -> float:
    model = tiny(item_loss=1.0, negatives=5, history_negatives=True, repeat_bias=True)
    batch = random_id_batch(n=8, n_items=N, max_len=8)
    if repeats:  # every target: one of the last three items
        back = torch.randint(0, 3, batch["inputs"].shape, generator=torch.Generator().manual_seed(0))
        pos = (torch.arange(batch["inputs"].shape[1]) - back).clamp(min=0)
        batch["targets"] = torch.where(batch["targets"] > 0, batch["inputs"].gather(1, pos.expand_as(back)), 0)
    else:  # no loss on the targets that repeat a history item
        seen = RPG.seen_items(batch["inputs"])
        batch["targets"][(seen == batch["targets"][..., None]).any(-1)] = 0
    id_contract.check_overfits(model, batch, steps=200)
    return round(float(model.repeat.detach()), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--record", type=Path, default=None)
    args = ap.parse_args()
    record = dict(
        benchmark="RPG's learned repeat bias on synthetic batches (200 Adam steps, 5 sampled negatives of 30 items)",
        command="python " + shlex.join(sys.argv),
        commit=git_commit(),
        machine=machine(),
        bias_when_every_target_repeats=learned_bias(True),
        bias_when_no_target_repeats=learned_bias(False),
    )
    print(json.dumps(record, indent=2))
    if args.record:
        io.save_json(args.record, record)


if __name__ == "__main__":
    main()
