"""Regenerate ``docs/gallery.md`` and ``docs/gallery/*.png`` from the shipped configs.

Every config in ``experiments/configs/`` is run with :func:`sde_toolkit.runner.run_experiment` (exactly what
``sde-toolkit run`` does) into ``--workdir/<name>``; its figures are copied into ``docs/gallery/`` as
``<name>__<figure>.png`` (downscaled to at most ``--width`` pixels, PNG), and the page is written from the run's
own verdicts and ``metrics.json``, so the gallery cannot drift from what the code draws and measures. Images in
``docs/gallery/`` that no run produced are removed.

    python experiments/make_gallery.py                 # the shipped settings (minutes; the score runs train)
    python experiments/make_gallery.py --quick         # fewer paths, shorter runs and training (the page says so)
    python experiments/make_gallery.py --only kramers_escape ou_stationary

Nothing in a config is evaluated; ``--quick`` only lowers sizes (paths, steps, training steps) in a copy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "experiments" / "configs"
DOCS = ROOT / "docs"
GALLERY = DOCS / "gallery"

# --quick: sizes capped per table and key (the rest of every config as shipped)
QUICK_CAPS = {
    ("initial", "n_paths"): 5000,
    ("score", "steps"): 1500,
    ("score", "n_samples"): 2000,
    ("compare", "n_chains"): 300,
    ("compare", "n_steps"): 600,
    ("compare", "train_steps"): 300,
    ("compare", "sample_steps"): 200,
}
QUICK_T1 = {"kramers_escape": 150.0, "seed_langevin": 50.0}


def _load(path: Path) -> dict:
    from sde_toolkit.config import tomllib

    return tomllib.loads(path.read_text())


def _quick(raw: dict, name: str) -> dict:
    cfg = json.loads(json.dumps(raw))
    for (table, key), cap in QUICK_CAPS.items():
        if table in cfg and key in cfg[table]:
            cfg[table][key] = min(cfg[table][key], cap)
    if name in QUICK_T1 and "integrate" in cfg:
        cfg["integrate"]["t1"] = min(cfg["integrate"]["t1"], QUICK_T1[name])
    return cfg


def _comment(path: Path) -> str:
    """The config's leading comment block (what the experiment asks), as one paragraph."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(lines)


def _shrink(src: Path, dst: Path, width: int) -> None:
    try:
        from PIL import Image
    except ImportError:  # pillow comes with matplotlib; without it the figure is copied as drawn
        shutil.copyfile(src, dst)
        return
    with Image.open(src) as im:
        if im.width > width:
            im = im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)
        im = im.convert("P", palette=Image.ADAPTIVE, colors=256)  # palette PNG: a fraction of the size
        im.save(dst, optimize=True)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _numbers(metrics: dict) -> list[tuple[str, str]]:
    """A few headline numbers of each kind, straight from metrics.json."""
    rows = []
    sim = metrics.get("simulation")
    if sim:
        rows.append(("ensemble", f"{sim['n_paths']} paths x {sim['n_steps']} steps, {sim['method']}, dt = "
                                 f"{sim['dt']:g}, {sim['wall_time_s']:.2f} s"))
    fp = metrics.get("fokker_planck")
    if fp:
        rows.append(("FP vs EM", f"final L1 {_fmt(fp['l1_final'])}, noise floor {_fmt(fp.get('noise_floor_final'))}, "
                                 f"largest L1 / floor {_fmt(fp.get('l1_over_noise_floor_max'))}; comparison "
                                 f"{_fmt(fp.get('compare_wall_time_s'))} s"))
    k = metrics.get("kramers")
    if k:
        rows.append(("mean first-passage time", f"EM {_fmt(k['mfpt_em'])} ± {_fmt(k['mfpt_em_se'])}, FP adjoint "
                                                f"{_fmt(k['mfpt_fp'])}, Kramers {_fmt(k['mfpt_kramers'])}"))
    d = metrics.get("ddpm")
    if d:
        rows.append(("sliced Wasserstein", f"ancestral {_fmt(d.get('sliced_wasserstein'))}, reverse SDE "
                                           f"{_fmt(d.get('reverse_sde_sliced_wasserstein'))}, noise floor "
                                           f"{_fmt(d.get('sliced_wasserstein_noise_floor'))}"))
    exp = metrics.get("experiment", {})
    rows.append(("wall time", f"{exp.get('wall_time_s', float('nan')):.1f} s"))
    return rows


def _mcmc_table(metrics: dict) -> str:
    rows = metrics.get("mcmc_vs_score")
    if not rows:
        return ""
    out = ["| target | method | TV | TV threshold | passed | ESS/s |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['target']} | {r['method']} | {_fmt(r['TV'])} | {_fmt(r.get('TV threshold'))} | "
                   f"{_fmt(r['passed'])} | {_fmt(r.get('ESS/s'))} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (paths, steps, training), labelled as such")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="configs to run (others keep their section)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "gallery", help="where the runs go")
    ap.add_argument("--width", type=int, default=900, help="largest image width in pixels")
    ap.add_argument("--no-progress", dest="progress", action="store_false", default=None)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    import sde_toolkit
    from sde_toolkit.runner import run_experiment

    configs = sorted(CONFIGS.glob("*.toml"))
    if args.only:
        unknown = set(args.only) - {c.stem for c in configs}
        if unknown:
            ap.error(f"no such config: {', '.join(sorted(unknown))}")
    GALLERY.mkdir(parents=True, exist_ok=True)
    state_file = GALLERY / "sections.json"  # each config's last section, so --only keeps the others
    sections: dict[str, dict] = json.loads(state_file.read_text()) if state_file.exists() else {}
    for cfg_path in configs:
        name = cfg_path.stem
        if args.only and name not in args.only:
            continue
        raw = _load(cfg_path)
        cfg = _quick(raw, name) if args.quick else raw
        print(f"== {name}{' (quick)' if args.quick else ''}", file=sys.stderr, flush=True)
        start = time.perf_counter()
        # run_experiment takes the parsed dict; it validates every table as `sde-toolkit run` does
        res = run_experiment(cfg, args.workdir / name, progress=args.progress, overwrite=True)
        print(f"   {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        for old in GALLERY.glob(f"{name}__*.png"):
            old.unlink()
        images = []
        for fig in res.figures:
            dst = GALLERY / f"{name}__{fig.stem}.png"
            _shrink(fig, dst, args.width)
            images.append(dst.name)
        sections[name] = {
            "title": raw.get("experiment", {}).get("title") or name,
            "question": _comment(cfg_path),
            "quick": bool(args.quick),
            "verdicts": list(res.headline),
            "numbers": _numbers(res.metrics),
            "mcmc": _mcmc_table(res.metrics),
            "images": images,
        }
    # drop sections and images of configs that are no longer shipped
    shipped = {c.stem for c in configs}
    sections = {k: v for k, v in sections.items() if k in shipped}
    keep = {img for s in sections.values() for img in s["images"]}
    for png in GALLERY.glob("*.png"):
        if png.name not in keep:
            png.unlink()
    state_file.write_text(json.dumps(sections, indent=1, ensure_ascii=False) + "\n")
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    lines = [
        "# Gallery: the shipped experiments",
        "",
        "Generated by `python experiments/make_gallery.py` from `experiments/configs/*.toml` (do not edit by hand: "
        "rerun the script). Each section is one `sde-toolkit run experiments/configs/<name>.toml`; its verdict "
        "lines are what the command prints, its numbers come from the run's `metrics.json`, and its images are the "
        "run's `figures/*.png` (downscaled).",
        "",
        f"sde_toolkit {sde_toolkit.__version__}, commit {commit}, "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d}. Sections marked *quick* ran at reduced sizes "
        f"(`--quick`: {', '.join(f'{t}.{k} <= {v}' for (t, k), v in QUICK_CAPS.items())}; t1 capped for "
        f"{', '.join(f'{k} ({v:g})' for k, v in QUICK_T1.items())}).",
        "",
    ]
    for cfg_path in configs:
        s = sections.get(cfg_path.stem)
        if s is None:
            continue
        lines += [f"## {cfg_path.stem}: {s['title']}" + (" (*quick*)" if s["quick"] else ""), ""]
        if s["question"]:
            lines += [s["question"], ""]
        lines += [f"`sde-toolkit run experiments/configs/{cfg_path.name}`", ""]
        if s["verdicts"]:
            lines += ["```"] + [f"result:  {v}" for v in s["verdicts"]] + ["```", ""]
        lines += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in s["numbers"]] + [""]
        if s["mcmc"]:
            lines += [s["mcmc"], ""]
        lines += [f"![{img}](gallery/{img})" for img in s["images"]] + [""]
    (DOCS / "gallery.md").write_text("\n".join(lines))
    print(f"wrote {DOCS / 'gallery.md'} and {len(keep)} images in {GALLERY}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
