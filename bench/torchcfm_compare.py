#!/usr/bin/env python3
"""TorchCFM's own code, side by side with scoreflow (issue 13).

Reproduces TorchCFM's 2-D runner setting -- MLP 3 -> 64x3 -> 2 SELU (torchcfm.models.MLP),
batch 512, AdamW(lr 1e-3, weight decay 1e-5), sigma = 0.1, 100 Euler steps, exact W2 on 1,000
held-out points (torchcfm.optimal_transport.wasserstein) -- for I-CFM (ConditionalFlowMatcher)
and OT-CFM (ExactOptimalTransportConditionalFlowMatcher), on

  n8g:     N(0, I)  -> 8gaussians (torchcfm.utils.sample_8gaussians: radius 5, TorchCFM's own)
  moons8g: moons    -> 8gaussians (torchcfm.utils.sample_moons -> sample_8gaussians)

Step 1 (`--write-data DIR`) writes the data as CSV with TorchCFM's generators (seeded):
  DIR/{n8g,moons8g}/{source_train,target_train,source_test,target_test}.csv
  (train: 10,000 points, as the runner's train split; test: 1,000 points). The N source's
  train file is unused (both programs draw fresh N(0, I) batches); its test file gives both
  programs the same start points.
Step 2 (`--train DIR`) trains TorchCFM on those CSVs: each minibatch draws 512 target rows (and
  512 source rows, for moons) uniformly with replacement, as scoreflow's finite data sources do.
  Evaluation integrates the 1,000 test source points with 100 Euler steps, accumulating the path
  energy E sum_k h ||v(x_k, t_k)||^2 along the way (TorchCFM's runner augments the state the same
  way), and reports W2(generated, target_test) and the normalised path energy
  |PE - W2^2(x0, x1)| / W2^2(x0, x1), x1 the generated points. One JSON line per run.

The scoreflow side: `cargo run --release -p scoreflow --example transport -- compare ...` on the
same CSVs (see crates/scoreflow/examples/transport.rs); `bench/torchcfm_compare.sh` runs both.
"""
import argparse
import json
import math
import os
import time

import numpy as np
import ot as pot
import torch

from torchcfm.conditional_flow_matching import (
    ConditionalFlowMatcher,
    ExactOptimalTransportConditionalFlowMatcher,
)
from torchcfm.models.models import MLP
from torchcfm.optimal_transport import wasserstein
from torchcfm.utils import sample_8gaussians, sample_moons

TRAIN, TEST = 10_000, 1_000


def write_csv(path, x):
    np.savetxt(path, np.asarray(x, dtype=np.float64), delimiter=",", header="x,y", comments="")


def read_csv(path):
    return torch.tensor(np.loadtxt(path, delimiter=",", skiprows=1), dtype=torch.float32)


def write_data(root, seed=1234):
    torch.manual_seed(seed)
    np.random.seed(seed)  # torchdyn's moons use numpy
    tgt_train, tgt_test = sample_8gaussians(TRAIN), sample_8gaussians(TEST)
    for name, src_train, src_test in [
        ("n8g", torch.randn(TRAIN, 2), torch.randn(TEST, 2)),
        ("moons8g", sample_moons(TRAIN), sample_moons(TEST)),
    ]:
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        write_csv(os.path.join(d, "source_train.csv"), src_train)
        write_csv(os.path.join(d, "source_test.csv"), src_test)
        write_csv(os.path.join(d, "target_train.csv"), tgt_train)
        write_csv(os.path.join(d, "target_test.csv"), tgt_test)


def euler_with_energy(model, x0, steps=100):
    """100 Euler steps from t = 0 to 1; returns (x1, E sum_k h ||v_k||^2)."""
    h = 1.0 / steps
    x, energy = x0.clone(), torch.zeros(x0.shape[0])
    with torch.no_grad():
        for k in range(steps):
            t = torch.full((x.shape[0], 1), k * h)
            v = model(torch.cat([x, t], 1))
            energy += h * (v**2).sum(1)
            x = x + h * v
    return x, energy.mean().item()


def w2_sq(a, b):
    m = torch.cdist(a, b) ** 2
    return pot.emd2(pot.unif(a.shape[0]), pot.unif(b.shape[0]), m.double().numpy(), numItermax=int(1e7))


def train_one(d, task, method, seed, steps, batch=512, sigma=0.1):
    torch.manual_seed(seed)
    tgt_train = read_csv(os.path.join(d, "target_train.csv"))
    src_train = read_csv(os.path.join(d, "source_train.csv"))
    src_test = read_csv(os.path.join(d, "source_test.csv"))
    tgt_test = read_csv(os.path.join(d, "target_test.csv"))
    fm = (ExactOptimalTransportConditionalFlowMatcher if method == "ot" else ConditionalFlowMatcher)(sigma=sigma)
    model = MLP(dim=2, time_varying=True, w=64)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    started = time.time()
    for _ in range(steps):
        x1 = tgt_train[torch.randint(len(tgt_train), (batch,))]
        if task == "n8g":
            x0 = torch.randn(batch, 2)
        else:
            x0 = src_train[torch.randint(len(src_train), (batch,))]
        t, xt, ut = fm.sample_location_and_conditional_flow(x0, x1)
        vt = model(torch.cat([xt, t[:, None]], dim=-1))
        loss = torch.mean((vt - ut) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_s = time.time() - started
    started = time.time()
    x1, energy = euler_with_energy(model, src_test)
    w2 = wasserstein(x1, tgt_test)  # TorchCFM's own exact W2 (POT emd2)
    w2_pairs = w2_sq(src_test, x1)
    eval_s = time.time() - started
    return {
        "program": "torchcfm", "task": task, "coupling": "independent" if method == "icfm" else "ot",
        "seed": seed, "steps": steps, "w2": w2, "path_energy": energy, "w2_sq_source_generated": w2_pairs,
        "normalized_path_energy": abs(energy - w2_pairs) / w2_pairs,
        "train_s": train_s, "eval_s": eval_s, "final_loss": loss.item(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write-data", metavar="DIR")
    p.add_argument("--train", metavar="DIR")
    p.add_argument("--tasks", default="n8g,moons8g")
    p.add_argument("--methods", default="icfm,ot")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.write_data:
        write_data(a.write_data)
    if a.train:
        for task in a.tasks.split(","):
            for method in a.methods.split(","):
                for seed in map(int, a.seeds.split(",")):
                    r = train_one(os.path.join(a.train, task), task, method, seed, a.steps)
                    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
