#!/usr/bin/env python3
"""Cost model of one data-parallel training step of DiT^DH-XL at 1-64 nodes (docs/distributed.md).

No dependencies. Every number that is not a measurement is an ASSUMPTION and is a flag:
  python3 tools/dist_cost_model.py                   # the table in docs/distributed.md
  python3 tools/dist_cost_model.py --img-per-s 300   # another single-GPU throughput
  python3 tools/dist_cost_model.py --per-gpu-batch 32  # weak scaling instead of a fixed global batch

Model (per GPU, per step; P parameters, b bytes per communicated element, n ranks in a group):
  ring all-reduce        2(n-1)/n * P*b / busbw
  reduce-scatter, all-gather  (n-1)/n * P*b / busbw each
  no_shard (DDP)         all-reduce of gradients                                  = 2 units
  shard_grad_op (ZeRO-2) reduce-scatter of gradients + all-gather of parameters  = 2 units
  full_shard (ZeRO-3)    all-gather (forward) + all-gather (backward) + reduce-scatter = 3 units
  hybrid_shard           ZeRO-3 inside the node (NVLink) + all-reduce of the 1/L shard across nodes
Across nodes NCCL runs one ring per NIC (8 per node): a ring's slowest link is its NVLink share or
its NIC, so the world-wide bus bandwidth is min(NVLink busbw, 8 x NIC bandwidth) (~370 GB/s).
Hybrid: each GPU all-reduces its 1/L gradient shard with its peers on the other nodes through its
own NIC, at the same time as the NVLink traffic of the intra-node ZeRO-3.
Latency: a tree collective costs 2 log2(n) hops of --latency-us each, per block and pass.
Overlap: gradient reduction hides behind backward (2/3 of the compute), parameter gathers behind
forward (1/3) with one block of prefetch; the first gather and the last reduction (one block) and
the optimizer step never overlap.
"""
import argparse


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", type=float, default=838e6, help="model parameters (DiT^DH-XL: 838M)")
    p.add_argument("--gflop-per-img", type=float, default=970.0, help="training GFLOP per image (fwd+bwd)")
    p.add_argument("--img-per-s", type=float, default=460.0,
                   help="ASSUMPTION until measured: single-GPU training images/s "
                        "(45%% MFU on an H100: 0.45 * 989 TFLOP/s / 970 GFLOP = ~460)")
    p.add_argument("--global-batch", type=int, default=1024, help="global batch (recipe: 1024)")
    p.add_argument("--per-gpu-batch", type=int, default=0, help="> 0: weak scaling at this per-GPU batch")
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--nvlink-busbw", type=float, default=370.0, help="GB/s, 8xH100 NVLink ring (anchors.md)")
    p.add_argument("--nic-bw", type=float, default=47.0, help="GB/s per NIC, IB NDR 46-49 (anchors.md)")
    p.add_argument("--nics-per-node", type=int, default=8)
    p.add_argument("--grad-bytes", type=float, default=2.0, help="bytes per gradient element on the wire (bf16)")
    p.add_argument("--param-bytes", type=float, default=2.0,
                   help="bytes per parameter element gathered (bf16; the CPU/MPI path gathers f32: 4)")
    p.add_argument("--largest-block-frac", type=float, default=0.09,
                   help="largest block / all parameters (a 2048-wide head block, ~75M of 838M)")
    p.add_argument("--latency-us", type=float, default=10.0,
                   help="ASSUMPTION: per-hop latency of a tree collective (inter-node)")
    p.add_argument("--collectives", type=int, default=31, help="per-block collectives per pass (28+2 blocks + rest)")
    p.add_argument("--hbm-tbs", type=float, default=2.5, help="ASSUMPTION: achieved HBM TB/s for the optimizer step")
    p.add_argument("--nodes", default="1,2,4,8,16,32,64")
    return p.parse_args()


def log2ceil(n):
    k = 0
    while (1 << k) < n:
        k += 1
    return k


def world_ring(bytes_, nodes, a):
    """Seconds per GPU of (reduce-scatter or all-gather, all-reduce) over all GPUs, NCCL ring.

    Across nodes NCCL runs one ring per NIC; each ring's slowest link is either its NVLink share
    or its NIC, so the bus bandwidth is min(NVLink, NICs x NIC bandwidth).
    """
    G = nodes * a.gpus_per_node
    bw = a.nvlink_busbw if nodes == 1 else min(a.nvlink_busbw, a.nics_per_node * a.nic_bw)
    half = (G - 1) / G * bytes_ / (bw * 1e9)
    return half, 2 * half


def step_model(strategy, nodes, a):
    G = nodes * a.gpus_per_node
    L = a.gpus_per_node
    P = a.params
    if a.per_gpu_batch > 0:
        img = a.per_gpu_batch
    else:
        img = a.global_batch / G
    t_compute = img / a.img_per_s
    t_fwd, t_bwd = t_compute / 3, 2 * t_compute / 3
    hops = 2 * log2ceil(G)
    lat = a.latency_us * 1e-6 * hops * a.collectives  # per pass of per-block collectives
    g_bytes, p_bytes = P * a.grad_bytes, P * a.param_bytes
    f = a.largest_block_frac

    if strategy == "no_shard":
        _, ar = world_ring(g_bytes, nodes, a)
        comm_bwd, comm_fwd, comm_after = ar + lat, 0.0, 0.0
        shard = 1
        wire = 2 * (G - 1) / G * g_bytes
    elif strategy == "shard_grad_op":
        rs, _ = world_ring(g_bytes, nodes, a)
        ag, _ = world_ring(p_bytes, nodes, a)
        # The parameter all-gather after the step is deferred into the next forward (prefetched).
        comm_bwd, comm_fwd, comm_after = rs + lat, ag + lat, 0.0
        shard = G
        wire = (G - 1) / G * (g_bytes + p_bytes)
    elif strategy == "full_shard":
        rs, _ = world_ring(g_bytes, nodes, a)
        ag, _ = world_ring(p_bytes, nodes, a)
        comm_fwd, comm_bwd, comm_after = ag + lat, ag + rs + 2 * lat, 0.0
        shard = G
        wire = (G - 1) / G * (g_bytes + 2 * p_bytes)
    elif strategy == "hybrid_shard":
        intra_rs = (L - 1) / L * g_bytes / (a.nvlink_busbw * 1e9)
        intra_ag = (L - 1) / L * p_bytes / (a.nvlink_busbw * 1e9)
        # Each GPU all-reduces its 1/L gradient shard with its peers on the other nodes, through
        # its own NIC (one NIC per GPU), in parallel with NVLink traffic.
        inter = 0.0 if nodes == 1 else 2 * (nodes - 1) / nodes * (g_bytes / L) / (a.nic_bw * 1e9)
        lat_inter = 0.0 if nodes == 1 else a.latency_us * 1e-6 * 2 * log2ceil(nodes) * a.collectives
        lat_intra = a.latency_us * 1e-6 * 2 * log2ceil(L) * a.collectives
        comm_fwd = intra_ag + lat_intra
        comm_bwd = max(intra_ag + intra_rs + 2 * lat_intra, inter + lat_inter)
        comm_after = 0.0
        shard = L
        wire = (L - 1) / L * (g_bytes + 2 * p_bytes) + (2 * (nodes - 1) / nodes * g_bytes / L if nodes > 1 else 0)
    else:
        raise ValueError(strategy)

    # Exposed communication: what exceeds the compute it overlaps, plus one block that cannot
    # overlap in each overlapped pass (first gather / last reduction).
    exposed = max(0.0, comm_fwd - t_fwd) + f * comm_fwd + max(0.0, comm_bwd - t_bwd) + f * comm_bwd + comm_after
    # AdamW on the owned shard: read p, g, m, v, write p, m, v (f32): 28 bytes per parameter.
    t_opt = P / shard * 28 / (a.hbm_tbs * 1e12)
    step = t_compute + exposed + t_opt
    return {
        "img": img, "compute": t_compute, "comm": comm_fwd + comm_bwd + comm_after,
        "exposed": exposed, "opt": t_opt, "step": step, "wire_gb": wire / 1e9,
        "throughput": img * G / step,
    }


def memory_gb(strategy, G, a, states=3):
    """Per-rank GB of f32 params, grads, AdamW m+v and EMA (states=3), as distributed::plan_memory."""
    P, f, L = a.params, 4, a.gpus_per_node
    big = a.largest_block_frac * P
    shard = {"no_shard": 1, "shard_grad_op": G, "full_shard": G, "hybrid_shard": min(L, G)}[strategy]
    params = P * f if strategy in ("no_shard", "shard_grad_op") else P * f / shard
    grads = P * f if strategy == "no_shard" else P * f / shard
    opt = P * f * states / shard
    staging = 2 * (big * 2 + big / shard * f)  # bf16 gradient reduction staging
    transient = {"no_shard": 2 * big * 2, "shard_grad_op": 2 * big * f + staging,
                 "full_shard": 4 * big * f + staging, "hybrid_shard": 4 * big * f + staging}[strategy]
    return params / 1e9, grads / 1e9, opt / 1e9, transient / 1e9


def main():
    a = parse()
    strategies = ["no_shard", "shard_grad_op", "full_shard", "hybrid_shard"]
    nodes_list = [int(x) for x in a.nodes.split(",")]
    mode = f"per-GPU batch {a.per_gpu_batch}" if a.per_gpu_batch else f"global batch {a.global_batch}"
    print(f"DiT^DH-XL {a.params/1e6:.0f}M params, {a.gflop_per_img:.0f} GFLOP/img, "
          f"ASSUMED single-GPU {a.img_per_s:.0f} img/s, {mode}; NVLink {a.nvlink_busbw:.0f} GB/s, "
          f"IB {a.nics_per_node}x{a.nic_bw:.0f} GB/s per node; grads {a.grad_bytes:g} B, params {a.param_bytes:g} B")
    print()
    hdr = f"{'nodes':>5} {'GPUs':>5} {'img/GPU':>7} {'compute':>8} | " + " | ".join(
        f"{s:^29}" for s in strategies)
    print(hdr)
    print(f"{'':>5} {'':>5} {'':>7} {'ms':>8} | " + " | ".join(
        f"{'GB/GPU':>6} {'comm':>6} {'expos':>6} {'step':>7}" for _ in strategies))
    print("-" * len(hdr))
    for n in nodes_list:
        G = n * a.gpus_per_node
        cells = []
        base = None
        for s in strategies:
            m = step_model(s, n, a)
            base = base or m
            cells.append(f"{m['wire_gb']:6.2f} {m['comm']*1e3:6.1f} {m['exposed']*1e3:6.1f} {m['step']*1e3:7.1f}")
        print(f"{n:>5} {G:>5} {base['img']:>7.1f} {base['compute']*1e3:>8.1f} | " + " | ".join(cells))
    print()
    print("GB/GPU: bytes each GPU sends per step; comm: communication time if serialized (ms);")
    print("expos: communication not hidden by compute (ms); step: compute + exposed + optimizer (ms).")
    print()
    print(f"{'nodes':>5} " + " ".join(f"{s + ' img/s':>22}" for s in strategies) + "   (whole job; efficiency vs GPUs x single-GPU)")
    for n in nodes_list:
        G = n * a.gpus_per_node
        row = []
        for s in strategies:
            m = step_model(s, n, a)
            row.append(f"{m['throughput']:>14.0f} ({m['throughput']/(G*a.img_per_s)*100:3.0f}%)")
        print(f"{n:>5} " + " ".join(f"{r:>22}" for r in row))
    print()
    print("Per-rank model state, GB (f32 params + grads + AdamW m, v + EMA; transient = gathered")
    print("blocks and gradient buffers in flight; activations not included):")
    for G in (8, 64, 512):
        cells = []
        for s in strategies:
            p_, g_, o_, t_ = memory_gb(s, G, a)
            cells.append(f"{s} {p_ + g_ + o_:5.2f} + {t_:4.2f}")
        print(f"  {G:>3} GPUs: " + "; ".join(cells))


if __name__ == "__main__":
    main()
