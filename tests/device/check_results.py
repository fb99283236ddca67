#!/usr/bin/env python3
"""Collects what tests/device/check.sh left in its work directory into OUT/results.json and
OUT/result.md (the skeleton of docs/perf/device/<date>-<card>.md: every table filled, the
analysis left to write), and WORK/summary.txt (the table the check prints last). Runs after every
stage, so partial results survive; tolerates any file being absent or malformed.

  check_results.py WORK OUT ROOT
"""
import datetime
import glob
import json
import os
import sys

WORK, OUT, ROOT = sys.argv[1:4]

# Targets of the issues, as ratios to the PyTorch reference of the same run.
STEP_TARGET_VS_COMPILE = 1.25  # issue 10: XL and S, bf16 and TF32
MFU_TARGET = 0.55
ENCODER_TARGET_VS_EAGER, ENCODER_TARGET_VS_COMPILE = 1.5, 1.0
CACHE_GPU_BUSY_TARGET = 0.80
# rae train on the GPU vs the CPU (issue 10) and the switches that must not change the losses.
AGREEMENT = [
    ("GPU fp32 vs CPU", "cuda_fp32", "cpu", 1e-6),
    ("GPU tf32 vs CPU", "cuda_tf32", "cpu", 1e-3),
    ("GPU bf16 vs CPU", "cuda_bf16", "cpu", 1e-2),
    ("CUDA graph vs eager, fp32", "cuda_fp32_graph", "cuda_fp32", 1e-6),
    ("CUDA graph vs eager, bf16", "cuda_bf16_graph", "cuda_bf16", 1e-2),
    ("gradient overwrite vs zero-fill, fp32", "cuda_fp32", "cuda_fp32_zerofill", 1e-6),
]


def path(*p):
    return os.path.join(WORK, *p)


def read(p, default=None):
    try:
        with open(p) as f:
            return f.read().strip()
    except OSError:
        return default


def jlines(p):
    rows = []
    for line in (read(p, "") or "").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    return rows


def jload(p):
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ratio(a, b):
    return a / b if a and b else None


def losses(run_dir):
    try:
        return [json.loads(l)["loss"] for l in open(os.path.join(run_dir, "metrics.jsonl")) if l.strip()]
    except (OSError, ValueError, KeyError):
        return []


def compare(a, b, tol, steps=20):
    la, lb = losses(a), losses(b)
    d = max((abs(x - y) / max(abs(y), 1e-30) for x, y in zip(la, lb)), default=None)
    ok = bool(la) and len(la) == len(lb) == steps and d is not None and d <= tol
    return {"steps_a": len(la), "steps_b": len(lb), "max_rel_diff": d, "tolerance": tol,
            "pass": ok}


def tests_section(res):
    for p in sorted(glob.glob(path("gtest_*.json"))):
        name = os.path.basename(p)[len("gtest_"):-len(".json")]
        g = jload(p)
        if g is None:
            res["tests"][name] = {"error": "unreadable gtest JSON (crashed binary?)"}
            continue
        cases = [(s["name"], t) for s in g.get("testsuites", []) for t in s.get("testsuite", [])]
        res["tests"][name] = {
            "tests": g.get("tests"), "failures": g.get("failures"), "errors": g.get("errors"),
            "failed": [f"{s}.{t['name']}" for s, t in cases if t.get("failures")],
            "skipped": sum(1 for _, t in cases if t.get("result") == "SKIPPED")}
    # A verdict per kernel configuration (test names "<binary>@<config>").
    configs = {}
    for n, t in res["tests"].items():
        cfg = n.split("@")[1] if "@" in n else "other"
        c = configs.setdefault(cfg, {"binaries": 0, "failures": 0, "failed": []})
        c["binaries"] += 1
        c["failures"] += (t.get("failures") or 0) + (1 if "error" in t else 0)
        c["failed"] += [n.split("@")[0] + ":" + f for f in t.get("failed", [])]
    for cfg, c in configs.items():
        bad = [k for k, v in res["stages"].items() if k.endswith("@" + cfg) and v not in ("0", "skipped")]
        c["nonzero_exits"] = bad
        c["verdict"] = "PASS" if c["failures"] == 0 and not bad else "FAIL"
    res["configs"] = configs


def steps_section(res):
    ours = {r.get("name"): r for r in jlines(path("step_bench.out")) if r.get("name")}
    torch = {}
    for r in jlines(path("torch.out")):
        torch[(r.get("name"), bool(r.get("compiled")))] = r
    keys = ("batch", "precision", "images_per_s", "tflops", "mfu", "peak_mem_gb", "ms_per_step",
            "gflop_per_image", "params", "loss", "ok", "error", "attention", "cuda_graph")
    rows = {}
    for name, o in sorted(ours.items()):
        b = {k: o.get(k) for k in keys if k in o}
        base = name
        for suffix in ("-graph", "-legacy"):
            if name.endswith(suffix):
                base = name[: -len(suffix)]
                b["vs_" + base] = ratio(o.get("images_per_s"), (ours.get(base) or {}).get("images_per_s"))
        te, tc = torch.get((base, False), {}), torch.get((base, True), {})
        b["torch_eager_images_per_s"] = te.get("images_per_s") if te.get("ok") else None
        b["torch_eager_batch"] = te.get("batch")
        b["torch_compile_images_per_s"] = tc.get("images_per_s") if tc.get("ok") else None
        b["torch_compile_batch"] = tc.get("batch")
        b["torch_compile_s"] = tc.get("compile_s")
        b["vs_eager"] = ratio(o.get("images_per_s"), b["torch_eager_images_per_s"])
        b["vs_compile"] = ratio(o.get("images_per_s"), b["torch_compile_images_per_s"])
        if base == name and o.get("ok"):
            b["target_vs_compile"] = STEP_TARGET_VS_COMPILE
            b["meets_compile_target"] = (b["vs_compile"] or 0) >= STEP_TARGET_VS_COMPILE \
                if b["vs_compile"] is not None else None
        if o.get("profile"):
            res["profiles"][name] = o["profile"]
        rows[name] = b
    for (name, compiled), t in torch.items():  # torch rows without ours (errors, skipped stages)
        if name not in rows:
            rows.setdefault(name, {})["torch_" + ("compile" if compiled else "eager") + "_images_per_s"] = \
                t.get("images_per_s") if t.get("ok") else None
    res["steps"] = rows
    res["torch_errors"] = {f"{n}{' (compiled)' if c else ''}": t.get("error")
                           for (n, c), t in torch.items() if not t.get("ok")}


def encoder_section(res):
    te = {r.get("name"): r for r in jlines(path("torch_encoder.out"))}
    tc = {r.get("name", "").replace("-compile", ""): r for r in jlines(path("torch_encoder_compile.out"))}
    rows = {}
    for r in jlines(path("encoder.out")):
        name = r.get("name") or "encoder"
        b = {k: r.get(k) for k in ("batch", "images_per_s", "peak_mem_gb", "ms_per_forward", "ok", "error") if k in r}
        e, c = te.get(name, {}), tc.get(name, {})
        b["torch_eager_images_per_s"] = e.get("images_per_s") if e.get("ok") else None
        b["torch_compile_images_per_s"] = c.get("images_per_s") if c.get("ok") else None
        b["vs_eager"] = ratio(r.get("images_per_s"), b["torch_eager_images_per_s"])
        b["vs_compile"] = ratio(r.get("images_per_s"), b["torch_compile_images_per_s"])
        rows[name] = b
    res["encoder"] = rows


def inception_section(res):
    torch_inc = {}
    for r in jlines(path("torch_inception.out")):
        if r.get("ok"):
            k = r.get("name")
            if k not in torch_inc or r["images_per_s"] > torch_inc[k]["images_per_s"]:
                torch_inc[k] = r
    rows = {}
    for r in jlines(path("inception.out")):
        name = r.get("name") or "inception"
        b = {k: r.get(k) for k in ("batch", "images", "images_per_s", "seconds", "peak_mem_gb", "ok", "error") if k in r}
        t = torch_inc.get("inception-torch-" + ("fp32" if "fp32" in name else "tf32"), {})
        b["torch_images_per_s"] = t.get("images_per_s")
        b["vs_torch"] = ratio(r.get("images_per_s"), t.get("images_per_s"))
        rows[name] = b
    res["inception"] = rows


def main():
    res = {
        "card": read(path("card.txt"), "unknown"),
        "commit": read(path("commit.txt"), read(os.path.join(ROOT, ".devbundle", "commit.txt"), "unknown")),
        "tree": read(path("tree_state.txt"), "unknown"),
        "cudnn": read(path("cudnn.txt"), "unknown"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "stages_requested": os.environ.get("CHECK_STAGES_RUN", ""),
        "stages": {os.path.basename(p)[:-3]: read(p) for p in sorted(glob.glob(path("res", "*.rc")))},
        "stage_seconds": {os.path.basename(p)[:-8]: read(p) for p in sorted(glob.glob(path("res", "*.seconds")))},
        "tests": {}, "profiles": {},
    }
    tests_section(res)
    steps_section(res)
    res["agreement"] = {label: compare(path("train", a), path("train", b), tol)
                        for label, a, b, tol in AGREEMENT
                        if os.path.isdir(path("train", a)) or os.path.isdir(path("train", b))}
    if os.path.isdir(path("zero3")):
        res["agreement"]["ZeRO-3, 2 ranks on one GPU vs 1 rank, fp32"] = \
            compare(path("zero3", "np2"), path("zero3", "np1"), 1e-6)
    cache = jload(path("cache_bench.json"))
    if cache:
        cache["meets_gpu_busy_target"] = (cache.get("gpu_busy_fraction") or 0) >= CACHE_GPU_BUSY_TARGET
        res["cache"] = cache
    encoder_section(res)
    inception_section(res)
    res["sub"] = {os.path.basename(p)[:-5]: jload(p) for p in sorted(glob.glob(path("sub", "*.json")))}
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    md, summary = render(res)
    with open(os.path.join(OUT, "result.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(path("summary.txt"), "w") as f:
        f.write("\n".join(summary) + "\n")


def fmt(v, f="{:.1f}"):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    try:
        return f.format(v)
    except (ValueError, TypeError):
        return str(v)


def render(res):
    md = [f"# Device check, {res['date'][:10]}, {res['card']}", "",
          f"- Commit {res['commit']} ({res['tree']}); cuDNN: {res['cudnn']}",
          f"- Stages: {res['stages_requested']}; command: `bash tests/device/check.sh` "
          "(docs/perf/device/README.md), carry `.devbundle`", ""]
    summary = [f"card {res['card']}  commit {res['commit']} ({res['tree']})  {res['date']}"]
    if res["configs"]:
        md += ["## CUDA tests per kernel configuration", "",
               "fast = defaults (cuDNN attention, vectorised kernels, BGRADB, gradient overwrite); "
               "legacy = `RAE_ATTENTION=gemm RAE_CUDA_LEGACY=all RAE_GRAD_OVERWRITE=0`; "
               "zero3 = the sharding core's CUDA tests on 2 ranks of one GPU.", "",
               "| configuration | verdict | binaries | failures | failed tests / nonzero exits |",
               "|---|---|---|---|---|"]
        for cfg, c in res["configs"].items():
            md.append(f"| {cfg} | {c['verdict']} | {c['binaries']} | {c['failures']} | "
                      f"{', '.join(c['failed'][:10] + c['nonzero_exits']) or '-'} |")
            summary.append(f"tests {cfg}: {c['verdict']} ({c['binaries']} binaries, {c['failures']} failures"
                           + (", failed " + " ".join(c["failed"][:6]) if c["failed"] else "")
                           + (", exits " + " ".join(c["nonzero_exits"]) if c["nonzero_exits"] else "") + ")")
        md += ["", "<details><summary>per binary</summary>", ""]
        md += [f"- {n}: {t.get('tests')} tests, {t.get('failures')} failed, {t.get('skipped')} skipped"
               + (f" ({t['error']})" if "error" in t else "") for n, t in res["tests"].items()]
        md += ["", "</details>", ""]
    if res["agreement"]:
        md += ["## Training agreement (20 steps of `rae train`, jobs/tiny.cfg)", "",
               "| check | max relative loss difference | tolerance | pass |", "|---|---|---|---|"]
        for label, a in res["agreement"].items():
            md.append(f"| {label} | {fmt(a['max_rel_diff'], '{:.2e}')} | {a['tolerance']:.0e} | "
                      f"{'PASS' if a['pass'] else 'FAIL'} ({a['steps_a']}/{a['steps_b']} steps) |")
            summary.append(f"{label}: {fmt(a['max_rel_diff'], '{:.2e}')} <= {a['tolerance']:.0e}: "
                           f"{'PASS' if a['pass'] else 'FAIL'}")
        md.append("")
    if res["steps"]:
        md += ["## Training step (the real trainer, `bench/step_bench_cuda`) vs PyTorch", "",
               "MFU: analytic FLOPs (docs/perf/device/README.md) / 989 TFLOP/s (bf16 rows) or "
               "494 (tf32 rows). Target (issue 10): ours / torch.compile >= "
               f"{STEP_TARGET_VS_COMPILE}, MFU >= {MFU_TARGET:.0%} (bf16).", "",
               "| step | batch | ours img/s | TFLOP/s | MFU | peak GB | eager img/s (batch) | "
               "compile img/s (batch) | / eager | / compile | target met |",
               "|---|---|---|---|---|---|---|---|---|---|---|"]
        summary.append(f"{'step':<18}{'batch':>6}{'img/s':>9}{'MFU':>7}{'eager':>9}{'compile':>9}"
                       f"{'/comp':>7}")
        for name, b in res["steps"].items():
            extra = "".join(f" ({k[3:]}: {v:.2f}x)" for k, v in b.items()
                            if k.startswith("vs_DiT") and v is not None)
            md.append(f"| {name}{extra} | {fmt(b.get('batch'), '{}')} | {fmt(b.get('images_per_s'))} | "
                      f"{fmt(b.get('tflops'))} | {fmt(b.get('mfu'), '{:.1%}')} | {fmt(b.get('peak_mem_gb'))} | "
                      f"{fmt(b.get('torch_eager_images_per_s'))} ({fmt(b.get('torch_eager_batch'), '{}')}) | "
                      f"{fmt(b.get('torch_compile_images_per_s'))} ({fmt(b.get('torch_compile_batch'), '{}')}) | "
                      f"{fmt(b.get('vs_eager'), '{:.2f}')} | {fmt(b.get('vs_compile'), '{:.2f}')} | "
                      f"{fmt(b.get('meets_compile_target'))} |")
            summary.append(f"{name:<18}{fmt(b.get('batch'), '{}'):>6}{fmt(b.get('images_per_s')):>9}"
                           f"{fmt(b.get('mfu'), '{:.1%}'):>7}{fmt(b.get('torch_eager_images_per_s')):>9}"
                           f"{fmt(b.get('torch_compile_images_per_s')):>9}{fmt(b.get('vs_compile'), '{:.2f}'):>7}"
                           + (" " + b["error"][:60] if b.get("error") else ""))
        if res.get("torch_errors"):
            md += [""] + [f"- PyTorch {k}: {v}" for k, v in res["torch_errors"].items()]
        md.append("")
    for name, p in res["profiles"].items():
        md += [f"## Profile: one {name} step (`step_bench_cuda --profile`)", "",
               f"Step {fmt(p.get('step_ms'))} ms with the per-op events (slightly slower than unprofiled); "
               f"outside ops {fmt(p.get('outside_ops_ms'))} ms.", "",
               "| op | calls | ms | % of step | TFLOP/s |", "|---|---|---|---|---|"]
        for r in p.get("ops", [])[:30]:
            md.append(f"| {r['op']} | {r['calls']} | {r['ms']:.2f} | {100 * r['share']:.1f} | "
                      f"{fmt(r.get('tflops'))} |")
        md.append("")
    if res.get("cache"):
        c = res["cache"]
        md += ["## Cache job on one GPU (`rae cache --benchmark`)", "",
               "```", json.dumps(c, indent=1), "```", ""]
        summary.append(f"cache: end to end {fmt(c.get('end_to_end_images_per_s'))} img/s, decode-bound "
                       f"{fmt(c.get('decode_images_per_s'))}, encoder-bound {fmt(c.get('encode_images_per_s'))}, "
                       f"GPU busy {fmt(c.get('gpu_busy_fraction'), '{:.0%}')}")
    if res["encoder"]:
        md += ["## DINOv2-B encoder forward", "",
               f"Targets: / eager >= {ENCODER_TARGET_VS_EAGER}, / compile >= {ENCODER_TARGET_VS_COMPILE}.", "",
               "| precision | batch | ours img/s | eager img/s | compile img/s | / eager | / compile |",
               "|---|---|---|---|---|---|---|"]
        for name, b in res["encoder"].items():
            md.append(f"| {name} | {fmt(b.get('batch'), '{}')} | {fmt(b.get('images_per_s'))} | "
                      f"{fmt(b.get('torch_eager_images_per_s'))} | {fmt(b.get('torch_compile_images_per_s'))} | "
                      f"{fmt(b.get('vs_eager'), '{:.2f}')} | {fmt(b.get('vs_compile'), '{:.2f}')} |")
            summary.append(f"{name}: {fmt(b.get('images_per_s'))} img/s, /eager {fmt(b.get('vs_eager'), '{:.2f}')}, "
                           f"/compile {fmt(b.get('vs_compile'), '{:.2f}')}")
        md.append("")
    if res["inception"]:
        md += ["## FID Inception-v3 features", "", "| run | images | ours img/s | torch-fidelity img/s | ratio |",
               "|---|---|---|---|---|"]
        for name, b in res["inception"].items():
            md.append(f"| {name} | {fmt(b.get('images'), '{}')} | {fmt(b.get('images_per_s'))} | "
                      f"{fmt(b.get('torch_images_per_s'))} | {fmt(b.get('vs_torch'), '{:.2f}')} |")
        md.append("")
    for name, sub in res["sub"].items():
        md += [f"## {name}", "", "```", json.dumps(sub, indent=1)[:6000], "```", ""]
    md += ["## Stages (exit status, seconds)", "",
           " ".join(f"{k}={v}({res['stage_seconds'].get(k, '?')}s)" for k, v in res["stages"].items()), "",
           "## Analysis", "", "(to write: targets met or missed, what is left, expected gains)"]
    summary.append("stages: " + " ".join(f"{k}={v}" for k, v in res["stages"].items()))
    return md, summary


if __name__ == "__main__":
    main()
