#!/usr/bin/env python3
"""PyTorch side of the U-Net comparison: the same network as scoreflow's `field::unet::Unet`
(same layers, channel plan, initialisation law and parameter names, so state dicts load both
ways), trained with conditional flow matching (straight path, N(0, I) source, Adam) at the same
batch and thread count.

Modes
  --bench      time --reps training steps (forward + backward + Adam) at --batch after 3 warm-up
               steps, and Euler sampling of --samples images with --euler-steps steps; one JSON
               line (step_ms, steps_per_s, sample_s, samples_per_s, params).
  --train DIR  train on DIR/train.csv and evaluate on DIR/test.csv, the split that
               `cargo run --release -p scoreflow --example unet_digits -- --out DIR` writes (64
               pixel columns + label, values 0..16), with the example's recipe: uniform
               dequantisation z = 2(x + u)/17 - 1, Adam with OneCycleLR (peak --lr, 5 % warm-up,
               div 25, final div 1e4), gradient clipping at norm 1, EMA 0.999 with warm-up
               beta_n = min(beta, (1 + n)/(10 + n)); then Euler samples (.npy in data units) and
               bits/dim of the held-out digits over 17 levels through the flow ODE (dopri5,
               torchdiffeq, rtol = atol = 1e-5) with --probes Rademacher probes held fixed along
               each trajectory.

  /tmp/refvenv/bin/python bench/unet_torch.py --bench --threads 2 --batch 128
  /tmp/refvenv/bin/python bench/unet_torch.py --train /tmp/digits --steps 2000
"""
import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def uniform_(t, k, gen):
    with torch.no_grad():
        t.copy_((torch.rand(t.shape, generator=gen, dtype=torch.float64) * 2 - 1) * k)


class Dense(nn.Linear):
    pass


def conv(c_in, c_out, k, stride=1):
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2)


class ResBlock(nn.Module):
    def __init__(self, c_in, c_out, emb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=1e-5)
        self.conv1 = conv(c_in, c_out, 3)
        self.embed = nn.Linear(emb, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=1e-5)
        self.conv2 = conv(c_out, c_out, 3)
        self.skip = conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.embed(F.silu(e))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class Attention(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-5)
        self.qkv = conv(c, 3 * c, 1)
        self.proj = conv(c, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3 * c, h * w).split(c, dim=1)
        a = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=2)
        o = (v @ a.transpose(1, 2)).reshape(n, c, h, w)
        return x + self.proj(o)


class Level(nn.Module):
    def __init__(self, blocks, sample):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.sample = sample


class Unet(nn.Module):
    """scoreflow's U-Net (see crates/scoreflow/src/field/unet.rs for the formulas)."""

    def __init__(self, channels=1, height=8, width=8, base=32, mults=(1, 2), res_blocks=1,
                 attention=True, groups=8, classes=0, time_scale=1000.0):
        super().__init__()
        self.shape = (channels, height, width)
        self.base, self.time_scale, self.classes = base, time_scale, classes
        e = 4 * base
        self.time1 = nn.Linear(base, e)
        self.time2 = nn.Linear(e, e)
        self.class_table = nn.Parameter(torch.randn(classes + 1, e)) if classes > 0 else None
        self.conv_in = conv(channels, base, 3)
        ch, skips, down = base, [base], []
        for l, m in enumerate(mults):
            out, blocks = base * m, []
            for _ in range(res_blocks):
                blocks.append(ResBlock(ch, out, e, groups))
                ch = out
                skips.append(ch)
            last = l == len(mults) - 1
            if not last:
                skips.append(ch)
            down.append(Level(blocks, None if last else conv(ch, ch, 3, stride=2)))
        self.down = nn.ModuleList(down)
        self.mid1 = ResBlock(ch, ch, e, groups)
        self.attention = Attention(ch, groups) if attention else None
        self.mid2 = ResBlock(ch, ch, e, groups)
        up = []
        for l in reversed(range(len(mults))):
            out, blocks = base * mults[l], []
            for _ in range(res_blocks + 1):
                blocks.append(ResBlock(ch + skips.pop(), out, e, groups))
                ch = out
            up.append(Level(blocks, conv(ch, ch, 3) if l != 0 else None))
        self.up = nn.ModuleList(up)
        self.norm_out = nn.GroupNorm(groups, base, eps=1e-5)
        self.conv_out = conv(base, channels, 3)

    def init_like_scoreflow(self, seed):
        """PyTorch's default law U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every weight and bias."""
        gen = torch.Generator().manual_seed(seed)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                uniform_(m.weight, 1 / math.sqrt(fan_in), gen)
                uniform_(m.bias, 1 / math.sqrt(fan_in), gen)
        return self

    def embedding(self, t, labels=None):
        half = self.base // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=t.dtype) / half)
        arg = (t * self.time_scale)[:, None] * freqs[None]
        e = self.time2(F.silu(self.time1(torch.cat([arg.cos(), arg.sin()], 1))))
        if self.class_table is not None:
            if labels is None:
                labels = torch.full((t.shape[0],), self.classes, dtype=torch.long)
            e = e + self.class_table[labels]
        return e

    def forward(self, x, t, labels=None):
        n = x.shape[0]
        e = self.embedding(t, labels)
        h = self.conv_in(x.reshape(n, *self.shape))
        hs = [h]
        for level in self.down:
            for b in level.blocks:
                h = b(h, e)
                hs.append(h)
            if level.sample is not None:
                h = level.sample(h)
                hs.append(h)
        h = self.mid1(h, e)
        if self.attention is not None:
            h = self.attention(h)
        h = self.mid2(h, e)
        for level in self.up:
            for b in level.blocks:
                h = b(torch.cat([h, hs.pop()], 1), e)
            if level.sample is not None:
                h = level.sample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h))).reshape(n, -1)


def cfm_loss(net, x1, gen):
    x0 = torch.randn(x1.shape, generator=gen).to(x1.device)
    t = torch.rand(x1.shape[0], generator=gen).to(x1.device)
    xt = t[:, None] * x1 + (1 - t[:, None]) * x0
    return ((net(xt, t) - (x1 - x0)) ** 2).mean()


@torch.no_grad()
def euler(net, n, d, steps, gen, device="cpu"):
    x = torch.randn(n, d, generator=gen).to(device)
    for i in range(steps):
        t = torch.full((n,), i / steps, device=device)
        x = x + net(x, t) / steps
    return x


def bench(args):
    net = Unet(base=args.base, mults=tuple(args.mults), res_blocks=args.res_blocks,
               attention=not args.no_attention).init_like_scoreflow(0).to(args.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    d = 64
    data = torch.randn(4096, d, generator=gen).to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    times, cpus = [], []
    for i in range(3 + args.reps):
        x1 = data[torch.randint(0, 4096, (args.batch,), generator=gen).to(args.device)]
        sync()
        start, cpu0 = time.perf_counter(), time.process_time()
        loss = cfm_loss(net, x1, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        if i >= 3:
            times.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu0)
    times.sort()
    start = time.perf_counter()
    euler(net, args.samples, d, args.euler_steps, gen, args.device)
    sync()
    sample_s = time.perf_counter() - start
    step_ms = 1e3 * times[len(times) // 2]
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "device": args.device, "params": sum(p.numel() for p in net.parameters()), "batch": args.batch,
        "base": args.base, "mults": args.mults, "res_blocks": args.res_blocks,
        "attention": not args.no_attention,
        "step_ms": round(step_ms, 2), "step_ms_min": round(1e3 * times[0], 2),
        "step_cpu_ms": round(1e3 * sum(cpus) / len(cpus), 2),
        "steps_per_s": round(1e3 / step_ms, 3),
        "samples": args.samples, "euler_steps": args.euler_steps,
        "sample_s": round(sample_s, 3), "samples_per_s": round(args.samples / sample_s, 2),
    }))


def train(args):
    load = lambda name: np.loadtxt(f"{args.train}/{name}", delimiter=",")
    train_px = torch.tensor(load("train.csv")[:, :64], dtype=torch.float32)
    test_px = torch.tensor(load("test.csv")[:, :64], dtype=torch.float32)
    levels = 17
    scale = lambda v: 2.0 * v / levels - 1.0  # (x + u)/17 mapped to [-1, 1)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    net = Unet(base=args.base, mults=tuple(args.mults), res_blocks=args.res_blocks,
               attention=not args.no_attention).init_like_scoreflow(args.seed)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05, div_factor=25.0,
        final_div_factor=1e4, anneal_strategy="cos", cycle_momentum=False)
    ema = [p.detach().clone() for p in net.parameters()]
    start, cpu0 = time.perf_counter(), time.process_time()
    losses = []
    for step in range(args.steps):
        idx = torch.randint(0, len(train_px), (args.batch,), generator=gen)
        u = torch.rand(args.batch, 64, generator=gen)
        x1 = scale(train_px[idx] + u)
        loss = cfm_loss(net, x1, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        beta = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema, net.parameters()):
                e.mul_(beta).add_(p.detach(), alpha=1 - beta)
        losses.append(loss.item())
    train_s, train_cpu = time.perf_counter() - start, time.process_time() - cpu0
    with torch.no_grad():
        for e, p in zip(ema, net.parameters()):
            p.copy_(e)
    start = time.perf_counter()
    samples = euler(net, 100, 64, 100, gen)
    sample_s = time.perf_counter() - start
    data_units = ((samples + 1) / 2 * levels - 0.5).clamp(0, levels - 1)
    np.save(f"{args.train}/torch_samples.npy", data_units.numpy())
    # bits/dim through the flow ODE with Hutchinson probes held fixed along each trajectory.
    import torchdiffeq

    x = scale(test_px + torch.rand(test_px.shape, generator=gen))
    n, d = x.shape
    probes = torch.randint(0, 2, (args.probes, n, d), generator=gen).float() * 2 - 1

    def aug(t, state):
        z = state[0]
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            v = net(z, torch.full((n,), float(t)))
            divs = []
            for k in range(args.probes):
                (g,) = torch.autograd.grad((v * probes[k]).sum(), z, retain_graph=True)
                divs.append((g * probes[k]).sum(1))
        return (v.detach(), torch.stack(divs).detach())

    start = time.perf_counter()
    with torch.no_grad():
        zs, deltas = torchdiffeq.odeint(aug, (x, torch.zeros(args.probes, n)),
                                        torch.tensor([1.0, 0.0]), rtol=1e-5, atol=1e-5,
                                        method="dopri5")
    z0, delta = zs[-1], deltas[-1]  # delta = int_1^0 div v dt = -int_0^1 div v dt
    logp0 = -0.5 * (z0 ** 2).sum(1) - 0.5 * d * math.log(2 * math.pi)
    logp = logp0[None] + delta  # log p(z) = log p0(z(0)) - int_0^1 div v dt
    log_pz = logp.mean().item()
    bpd = (-log_pz - d * math.log(2.0) + d * math.log(levels)) / (d * math.log(2))
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "steps": args.steps, "batch": args.batch,
        "threads": torch.get_num_threads(), "train_s": round(train_s, 1),
        "train_cpu_s": round(train_cpu, 1), "steps_per_s": round(args.steps / train_s, 3),
        "final_loss_mean100": round(float(np.mean(losses[-100:])), 4),
        "sample_s": round(sample_s, 2), "held_out": n, "probes": args.probes,
        "bits_per_dim": round(bpd, 4), "likelihood_s": round(time.perf_counter() - start, 1),
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", action="store_true")
    p.add_argument("--train", metavar="DIR")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu or cuda (bench mode)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--base", type=int, default=32)
    p.add_argument("--mults", type=int, nargs="+", default=[1, 2])
    p.add_argument("--res-blocks", type=int, default=1)
    p.add_argument("--no-attention", action="store_true")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--euler-steps", type=int, default=100)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--probes", type=int, default=4)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.bench:
        bench(args)
    if args.train:
        train(args)


if __name__ == "__main__":
    main()
