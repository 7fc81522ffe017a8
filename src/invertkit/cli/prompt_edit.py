"""``invertkit edit RUN -g G --edit-prompt P [--controller p2p]``: text edits of diffusion inversion runs
with attention control. Writes, per image and edit prompt, a strip ``OUT/<name>_<controller>_<prompt>.png``
(source image | reconstruction | edit [| local-blend mask]), ``OUT/edits.json`` and ``OUT/report.html``
(source, reconstruction and edit side by side)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, InvertkitError


def add_flags(p: argparse.ArgumentParser) -> None:
    """The diffusion-edit flags of ``invertkit edit``."""
    g = p.add_argument_group("diffusion runs: text edits with attention control")
    g.add_argument("--edit-prompt", default=None, help="edit prompts, comma-separated (diffusion runs; replaces --direction)")
    g.add_argument("--prompt", default=None, help="the source prompt (default: the inversion's prompt)")
    g.add_argument("--controller", default="p2p",
                   help="attention control: p2p (word swap), p2p-refine (words added/removed), pnp (plug-and-play, UNets), "
                   "share (RF-Solver-Edit/FireFlow value sharing, FLUX/SD3), none (default p2p)")
    g.add_argument("--cross-steps", type=float, default=0.8, help="p2p: share of steps with the source's cross-attention (default 0.8)")
    g.add_argument("--self-steps", type=float, default=0.4, help="p2p: share of steps with the source's self-attention (default 0.4)")
    g.add_argument("--blend", default=None, metavar="SOURCE_WORDS:TARGET_WORDS",
                   help="p2p local blending: change only where these words attend, e.g. --blend three:eight (words space-separated)")
    g.add_argument("--blend-threshold", type=float, default=0.3, help="p2p local blending cut of the normalised maps (default 0.3)")
    g.add_argument("--reweight", action="append", default=[], metavar="WORD=SCALE",
                   help="p2p: scale the attention to a target word, e.g. --reweight thick=2 (repeatable)")
    g.add_argument("--feature-steps", type=float, default=0.8, help="pnp: share of steps with injected decoder features (default 0.8)")
    g.add_argument("--attention-steps", type=float, default=0.5, help="pnp: share of steps with injected self-attention (default 0.5)")
    g.add_argument("--feature-layer", default="up_blocks.1.resnets.1", help="pnp: the decoder ResNet block whose features are injected")
    g.add_argument("--inject-steps", type=int, default=2, help="share: sampling steps with the source's attention values (default 2)")
    g.add_argument("--guidance", type=float, default=None, help="guidance scale of the edit (default: the inversion's)")
    g.add_argument("--prompt-embeds", default=None, help="a safetensors file of named prompt embeddings to add")


def _blend(text: str | None) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    if text is None:
        return None
    src, sep, tgt = text.partition(":")
    if not sep or not src.split() or not tgt.split():
        raise ConfigError(f"--blend {text!r}: use SOURCE_WORDS:TARGET_WORDS, e.g. --blend three:eight")
    return tuple(src.split()), tuple(tgt.split())


def _reweight(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        word, sep, value = item.partition("=")
        try:
            scale = float(value)
        except ValueError:
            scale = float("nan")
        if not sep or not word or scale != scale:
            raise ConfigError(f"--reweight {item!r}: use WORD=SCALE, e.g. --reweight thick=2")
        out[word] = scale
    return out


def options(args: argparse.Namespace):  # noqa: ANN201
    """The PromptEditOptions of the command line (checked before any work)."""
    from ..editing.prompt_edit import CONTROLLERS, PromptEditOptions

    if args.controller not in CONTROLLERS:
        raise ConfigError(f"--controller {args.controller!r} is not known; use one of {', '.join(CONTROLLERS)}")
    if args.guidance is not None and not (args.guidance == args.guidance and abs(args.guidance) < 1e3):
        raise ConfigError(f"--guidance {args.guidance} must be a finite scale")
    from ..diffusion.attention import P2POptions

    P2POptions(cross_steps=args.cross_steps, self_steps=args.self_steps, blend_threshold=args.blend_threshold)  # range checks
    return PromptEditOptions(controller=args.controller, cross_steps=args.cross_steps, self_steps=args.self_steps,
                             blend=_blend(args.blend), blend_threshold=args.blend_threshold,
                             reweight=_reweight(args.reweight), guidance=args.guidance,
                             feature_steps=args.feature_steps, attention_steps=args.attention_steps,
                             feature_layer=args.feature_layer, inject_steps=args.inject_steps)


def _source_image(run_dir: Path, stem: str, like: torch.Tensor) -> torch.Tensor | None:
    from ..io.images import read_image

    path = run_dir / "images" / f"{stem}_target.png"
    if not path.is_file():
        return None
    try:
        return read_image(path, like.shape[-1], like.shape[0])[0].to(like)
    except InvertkitError:
        return None


def run(args: argparse.Namespace) -> int:
    from ..editing.prompt_edit import build_controller, prompt_edit
    from ..generators import load_generator
    from ..io.report import ReportItem, write_report
    from ..io.strips import save_strip
    from .edit import parse_ids, picture_scale, slug
    from .invert import prepare_diffusion_flags
    from .regenerate import diffusion_runs

    opts = options(args)
    G = load_generator(args.generator, device=args.device, weights=args.weights)
    targets = prepare_diffusion_flags(G, args.prompt_embeds, args.edit_prompt)
    if not targets:
        raise ConfigError("--edit-prompt needs at least one prompt")
    if args.prompt is not None:
        G.cond(args.prompt)  # an unknown source prompt fails before any work
    items = diffusion_runs([args.latents], G, parse_ids(args.ids))
    if items:  # prompts, words and options are checked once before any sampling
        for prompt in targets:
            build_controller(G, items[0][1], prompt, opts, source_prompt=args.prompt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scale = picture_scale(args, G.resolution)
    record: dict[str, Any] = {"source": str(args.latents), "generator": G.describe(), "controller": opts.controller,
                              "options": {"cross_steps": opts.cross_steps, "self_steps": opts.self_steps,
                                          "blend": opts.blend, "blend_threshold": opts.blend_threshold,
                                          "reweight": opts.reweight, "guidance": opts.guidance,
                                          "feature_steps": opts.feature_steps, "attention_steps": opts.attention_steps,
                                          "feature_layer": opts.feature_layer, "inject_steps": opts.inject_steps},
                              "source_prompt": args.prompt, "edits": [], "failures": {}}
    report: list[ReportItem] = []
    run_dir = Path(args.latents)
    # the source branch reconstructs the image only with the inversion's prompt and guidance
    first = items[0][1] if items else None
    same = first is None or ((opts.guidance is None or opts.guidance == first.options.guidance)
                             and (args.prompt is None or args.prompt == first.options.prompt))
    branch = "reconstruction" if same else "source branch"
    record["source_branch"] = branch
    for stem, result in items:
        try:
            extras: dict[str, torch.Tensor] = {}
            recon = None
            for prompt in targets:
                edit = prompt_edit(G, result, prompt, opts, source_prompt=args.prompt)
                recon = edit.source[0].cpu()
                frames = [recon, edit.edited[0].cpu()]
                labels = ["recon" if branch == "reconstruction" else "source br.", "edit"]  # short: frames are 64 px
                source = _source_image(run_dir, stem, recon)
                if source is not None:
                    frames, labels = [source, *frames], ["source", *labels]
                if edit.mask is not None:
                    m = torch.nn.functional.interpolate(edit.mask[:1].float().cpu(), size=recon.shape[-2:], mode="nearest")[0]
                    frames.append((m * 2 - 1).expand_as(recon))
                    labels.append("mask")
                    extras[f"mask {prompt}"] = frames[-1]
                name = f"{stem}_{opts.controller}_{slug(prompt or 'null')}.png"
                save_strip(torch.stack(frames), out / name, labels=labels, scale=scale)
                extras[f"{opts.controller}: {prompt or 'null'}"] = edit.edited[0].cpu()
                record["edits"].append({"image": stem, "prompt": prompt, "png": name, "nfe": edit.nfe})
                _write(out, record)
            src = _source_image(run_dir, stem, recon)
            report.append(ReportItem(stem, src if src is not None else recon, recon, {}, extras))
        except InvertkitError as exc:  # one image's failure must not cost the others
            record["failures"][stem] = str(exc)
            _write(out, record)
            print(f"invertkit: skipped {stem}: {exc}", flush=True)
    write_report(out / "report.html", title=f"invertkit edit: {opts.controller}",
                 subtitle=f"{args.latents} with {G.name}; source prompt {args.prompt or '(the inversion’s)'}; "
                          f"edit prompts {', '.join(p or 'null' for p in targets)}",
                 items=report, summary={"controller": opts.controller, "edits": str(len(record["edits"])),
                                        "failures": str(len(record["failures"]))},
                 failures=record["failures"] or None, pair_labels=("source", branch),
                 notes=["Each row: the source image, the source branch (the reconstruction when the edit runs at "
                        "the inversion's prompt and guidance), then the edits (and the local-blend mask, white "
                        "where the edit may change the image)."])
    _write(out, record)
    print(f"wrote {len(record['edits'])} edit strip(s), edits.json and report.html to {out}"
          + (f" ({len(record['failures'])} image(s) failed)" if record["failures"] else ""))
    return 1 if record["failures"] else 0


def _write(out: Path, record: dict[str, Any]) -> None:
    from ..io.atomic import write_text_atomic

    write_text_atomic(out / "edits.json", json.dumps(record, indent=2) + "\n")
