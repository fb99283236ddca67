#!/usr/bin/env python3
"""Sampler parity goldens: a PyTorch transcription of the release's sampling path
(src/stage2/transport/integrators.py ode/sde, transport.py Sampler.sample_ode / sample_sde,
path.py ICPlan, models/DDT.py forward_with_cfg / forward_with_autoguidance, sample_ddp.py's
doubled [z; z] batch with [y; null] labels and the final chunk(2)[0]) run on the tiny DiT^DH of
tests/goldens/dit/tiny_ditdh.safetensors, with the plain LightningDiT of tiny_dit.safetensors as
the AutoGuidance guide. Models in float64; the time grids in float32 as the release builds them.
When torchdiffeq is importable the Euler and Heun loops are also checked against
torchdiffeq.odeint (the integrator the release calls).

Writes tests/goldens/sample/sampler_parity.safetensors:
  noise (N, C, H, W)            initial noise, the release's layout
  sde_noise (S, N, C, H, W)     the Euler-Maruyama noise of each step (S = steps - 1), for the
                                conditional half of the doubled batch
  labels (N) int32
  case.<name> (N, C, H, W)      final latents (float64) of each case
  metadata "cases": JSON list of {name, sampler, steps, guidance, scale, t_min, t_max,
                                  diffusion, last_step, last_step_size}, "shift_base", "labels"
and the two models as `rae sample` loads them (state dict + "dit_config" metadata):
tests/goldens/sample/micro_model.safetensors (DiT^DH) and micro_guide.safetensors (LightningDiT).

Run: .venv/bin/python tests/reference/make_sampler_golden.py
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ditdh_reference as ref  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDENS = os.path.normpath(os.path.join(HERE, "..", "goldens"))
DT = torch.float64

C, G, K = 8, 4, 5  # the DiT goldens: 8 channels, 4x4 grid, 5 classes (null label 5)
MODEL = dict(C=C, G=G, BODY_W=16, BODY_D=2, BODY_H=2, HEAD_W=24, HEAD_D=1, HEAD_H=2, EPS=1e-6)
GUIDE = dict(C=C, G=G, BODY_W=16, BODY_D=2, BODY_H=2, HEAD_W=0, HEAD_D=0, HEAD_H=0, EPS=1e-6)
LABELS = [4, 0, 2]
STEPS = 8
SHIFT_BASE = 16.0  # shift = sqrt(16 * 8 / 16) = 2.83 (the release requires shift >= 1)
SHIFT = math.sqrt(G * G * C / SHIFT_BASE)

CASES = [
    dict(name="euler", sampler="euler", guidance="none", scale=1.0, t_min=0.0, t_max=1.0),
    dict(name="euler_cfg", sampler="euler", guidance="cfg", scale=2.5, t_min=0.1, t_max=0.7),
    dict(name="heun_cfg", sampler="heun", guidance="cfg", scale=2.0, t_min=0.0, t_max=0.5),
    dict(name="sde_cfg", sampler="sde", guidance="cfg", scale=1.8, t_min=0.2, t_max=1.0),
    dict(name="euler_ag", sampler="euler", guidance="autoguidance", scale=1.42, t_min=0.0,
         t_max=1.0),
    dict(name="sde_ag", sampler="sde", guidance="autoguidance", scale=1.42, t_min=0.3, t_max=0.9),
]
SDE = dict(diffusion="sigma", last_step="mean", last_step_size=0.04)


DIT_CONFIG = dict(in_channels=C, grid=G, num_classes=K, mlp_ratio=4.0, class_dropout=0.1,
                  fourier_size=8)


def save_model(name, params, arch, preset):
    cfg = dict(DIT_CONFIG, name=preset, body_width=arch["BODY_W"], body_depth=arch["BODY_D"],
               body_heads=arch["BODY_H"], head_width=arch["HEAD_W"], head_depth=arch["HEAD_D"],
               head_heads=arch["HEAD_H"])
    save_file({n: v.float().contiguous() for n, v in params.items()},
              os.path.join(GOLDENS, "sample", name), metadata={"dit_config": json.dumps(cfg)})


def load_params(name):
    g = load_file(os.path.join(GOLDENS, "dit", name))
    return {n[6:]: v.to(DT) for n, v in g.items() if n.startswith("param.")}


P_MODEL = load_params("tiny_ditdh.safetensors")
P_GUIDE = load_params("tiny_dit.safetensors")


def model_forward(x, t, y):
    return ref.forward(P_MODEL, x, t.to(DT), y.long(), MODEL)


def guide_forward(x, t, y):
    return ref.forward(P_GUIDE, x, t.to(DT), y.long(), GUIDE)


# ---- models/DDT.py guidance (in_channels == all channels) ----
def forward_with_cfg(x, t, y, cfg_scale, cfg_interval):
    half = x[: len(x) // 2]
    out = model_forward(torch.cat([half, half], dim=0), t, y)
    cond, uncond = torch.split(out, len(out) // 2, dim=0)
    t_min, t_max = cfg_interval
    assert t_min < t_max
    th = t[: len(t) // 2]
    inside = ((th >= t_min) & (th <= t_max)).view(-1, 1, 1, 1)
    half_eps = torch.where(inside, uncond + cfg_scale * (cond - uncond), cond)
    return torch.cat([half_eps, half_eps], dim=0)


def forward_with_autoguidance(x, t, y, cfg_scale, cfg_interval):
    eps = model_forward(x, t, y)
    ag = guide_forward(x, t, y)
    t_min, t_max = cfg_interval
    assert t_min < t_max
    inside = ((t >= t_min) & (t <= t_max)).view(-1, 1, 1, 1)
    return torch.where(inside, ag + cfg_scale * (eps - ag), eps)


# ---- integrators.py: the grids (float32) and the fixed-grid ODE steps ----
def grid(t0, t1, n):
    t = 1 - torch.linspace(t0, t1, n)
    return SHIFT * t / (1 + (SHIFT - 1) * t)


def ode_sample(method, drift, x, ts):
    """torchdiffeq's fixed-grid 'euler' / 'heun2' over the decreasing grid ts."""
    for t0, t1 in zip(ts[:-1], ts[1:]):
        dt = (t1 - t0).to(DT)
        k1 = drift(x, t0)
        if method == "euler":
            x = x + dt * k1
        else:
            k2 = drift(x + dt * k1, t1)
            x = x + dt * (k1 * 0.5 + k2 * 0.5)
    return x


# ---- path.py ICPlan (t = 1 is noise) and transport.py Sampler.sample_sde ----
def expand(t, x):
    return t.view(t.size(0), *([1] * (x.dim() - 1))).to(DT)


def score_from_velocity(v, x, t):
    t = expand(t, x)
    alpha_t, d_alpha_t = 1 - t, -1
    sigma_t, d_sigma_t = t, 1
    reverse_alpha_ratio = alpha_t / d_alpha_t
    var = sigma_t ** 2 - reverse_alpha_ratio * d_sigma_t * sigma_t
    return (reverse_alpha_ratio * v - x) / var


def diffusion(x, t, form, norm=1.0):
    t = expand(t, x)
    if form in ("sigma", "linear"):
        return norm * t
    if form == "constant":
        return norm
    raise ValueError(form)


def sde_sample(model_fn, x, noise, last_step_size, form):
    t1 = 1 - last_step_size
    ts = grid(0.0, t1, STEPS)

    def sde_drift(x, t):
        v = model_fn(x, t)  # the release's drift (velocity model) and score both query the model
        return v - diffusion(x, t, form) * score_from_velocity(model_fn(x, t), x, t)

    for k, (t_curr, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        w_cur = noise[k]
        t = torch.ones(x.size(0)) * t_curr
        dw = w_cur * torch.sqrt(t_curr - t_next).to(DT)
        drift = sde_drift(x, t)
        mean_x = x - drift * (t_curr - t_next).to(DT)
        x = mean_x + torch.sqrt(2 * diffusion(x, t, form)) * dw
    ts_last = torch.ones(x.size(0)) * (1 - t1)
    return x - sde_drift(x, ts_last) * last_step_size


def run_case(case, z, y, sde_noise):
    n = z.shape[0]
    guided = case["guidance"] != "none" and case["scale"] > 1.0  # sample_ddp: using_cfg
    if guided:
        z = torch.cat([z, z], dim=0)
        y = torch.cat([y, torch.full((n,), K, dtype=y.dtype)], dim=0)
        fn = forward_with_cfg if case["guidance"] == "cfg" else forward_with_autoguidance
        interval = (case["t_min"], case["t_max"])

        def model_fn(x, t):
            return fn(x, t, y, case["scale"], interval)
    else:
        def model_fn(x, t):
            return model_forward(x, t, y)

    def drift(x, t):  # the ODE's _fn: t broadcast over the batch
        return model_fn(x, torch.ones(x.size(0)) * t)

    if case["sampler"] == "sde":
        # The doubled batch draws noise for both halves; only the conditional half is kept.
        noise = torch.cat([sde_noise, torch.zeros_like(sde_noise)], dim=1) if guided else sde_noise
        out = sde_sample(model_fn, z, noise, SDE["last_step_size"], SDE["diffusion"])
    else:
        ts = grid(0.0, 1 - 1 / 1000, STEPS)
        out = ode_sample(case["sampler"], drift, z, ts)
        check_with_torchdiffeq(case, drift, z, ts, out)
    return out[:n] if guided else out


def check_with_torchdiffeq(case, drift, z, ts, out):
    try:
        from torchdiffeq import odeint
    except ImportError:
        print("  (torchdiffeq not installed: ODE loops not cross-checked)")
        return
    method = "euler" if case["sampler"] == "euler" else "heun2"
    sol = odeint(lambda t, x: drift(x, t.float()), z, ts, method=method)[-1]
    err = ((sol - out).abs().max() / out.abs().max()).item()
    # Heun's second stage: torchdiffeq integrates in negated time and evaluates at -(-t0 + dt)
    # in float32, which can differ from t1 by an ulp (~1e-9 here); Euler agrees exactly.
    assert err < 1e-7, f"{case['name']}: transcription differs from torchdiffeq by {err}"
    print(f"  {case['name']}: torchdiffeq odeint({method}) agrees ({err:.1e})")


def main():
    gen = torch.Generator().manual_seed(5)
    n = len(LABELS)
    z = torch.randn(n, C, G, G, generator=gen).to(DT)
    sde_noise = torch.randn(STEPS - 1, n, C, G, G, generator=gen).to(DT)
    y = torch.tensor(LABELS, dtype=torch.int32)
    golden = {"noise": z.float(), "sde_noise": sde_noise.float(), "labels": y}
    z, sde_noise = z.float().to(DT), sde_noise.float().to(DT)  # exactly what the file holds
    cases = []
    with torch.no_grad():
        for case in CASES:
            out = run_case(case, z, y, sde_noise)
            assert torch.isfinite(out).all(), case["name"]
            golden["case." + case["name"]] = out.contiguous()
            meta = dict(case, steps=STEPS, **(SDE if case["sampler"] == "sde" else {}))
            cases.append(meta)
            print(f"{case['name']}: |x| max {out.abs().max():.3f}")
    meta = {"cases": json.dumps(cases), "shift_base": str(SHIFT_BASE), "labels": json.dumps(LABELS)}
    os.makedirs(os.path.join(GOLDENS, "sample"), exist_ok=True)
    path = os.path.join(GOLDENS, "sample", "sampler_parity.safetensors")
    save_file(golden, path, metadata=meta)
    save_model("micro_model.safetensors", P_MODEL, MODEL, "DiTDH-micro")
    save_model("micro_guide.safetensors", P_GUIDE, GUIDE, "DiT-micro")
    print(f"wrote {os.path.normpath(path)} and the models")


if __name__ == "__main__":
    main()
