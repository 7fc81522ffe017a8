"""The diffusion routes of ``edit_benchmark.py``: Prompt-to-Prompt word swap on the shipped text-token
MNIST diffusion model (``diffusion-mnist32``) after Direct Inversion or null-text inversion.

The source prompt describes the digit as the training prompts did (``invertkit.diffusion.train_mnist.
digit_words``: its word, then the thickness and slant words computed from the image: ``three thick
right``) and the edit prompt swaps the digit's word only (``eight thick right``), so the words for what
should not change stay in both. With ``describe=False`` (route ``p2p-direct-word``) the prompts are the
digit words alone (``three`` -> ``eight``; the model was trained with attribute words dropped 30% of the
time, so a lone word is in its distribution). All digits are inverted in one batch, each with its own prompt
embedding, with guidance ``GUIDANCE`` and ``STEPS`` steps, then edited in one batch by the P2P
controller (replace) of ``invertkit edit``. The one
tuned setting, the share of steps with the source's cross-attention (``cross_steps``), is chosen on the
calibration digits (MNIST 4000-4199) by the same kind of rule as the GAN strength: the largest value
(most of the source kept) in the grid whose calibration success reaches the bar, else the most successful.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from invertkit.editing.digit_judge import classify_digits, crop_32_to_28, pad_28_to_32

STEPS = 20
GUIDANCE = 5.0
CROSS_GRID = [0.8, 0.6, 0.4, 0.2]  # most preserving first
SELF_STEPS = 0.4  # the P2P paper's default
SUCCESS_BAR = 0.8
CALIBRATION_DIGITS = 100  # the first 100 calibration digits not already of their target (sampling cost)
METHODS = {"direct": {}, "nulltext": {"inner_steps": 10}}


def _model(ctx: Any):  # noqa: ANN401, ANN202
    if "mnist32" not in ctx.cache:
        from invertkit.generators import load_generator

        G = load_generator("diffusion-mnist32")
        info = json.loads((Path(G.folder.path) / "training.json").read_text(encoding="utf-8"))
        ctx.cache["mnist32"] = (G, tuple(info["thickness_thresholds_px"]), tuple(info["slant_thresholds_rad"]))
    return ctx.cache["mnist32"]


def _prompts(ctx: Any, images: Tensor, labels: Tensor, targets: Tensor, describe: bool) -> tuple[list[str], list[str]]:  # noqa: ANN401
    """Each digit's own prompt and its edit prompt (the digit's word swapped for the target's)."""
    from invertkit.diffusion.train_mnist import VOCABULARY, digit_words

    _, thick, slant = _model(ctx)
    ids, _ = digit_words(images, labels, thick, slant)
    src = [" ".join(VOCABULARY[int(i)] for i in (row if describe else row[:1])) for row in ids]
    tgt = [" ".join([VOCABULARY[1 + int(k)], *s.split()[1:]]) for s, k in zip(src, targets.tolist(), strict=True)]
    return src, tgt


def _embeds(G: Any, prompts: list[str]) -> Tensor:  # noqa: ANN401
    """One prompt embedding per image, ``[N, tokens, width]`` (the model's word table)."""
    return torch.stack([G.cond(p) for p in prompts])


def _invert(ctx: Any, key: str, images: Tensor, prompts: list[str], method: str):  # noqa: ANN202, ANN401
    """Invert all digits in one batch, each with its own prompt (cached under ``key``): ``(setup, state)``.

    ``invertkit.invert`` takes one prompt per call; a batch of per-image prompts goes one level down:
    the method's own ``invert(setup)`` on a setup whose guidance holds one embedding per image."""
    cache_key = f"{key}-{method}"
    if cache_key not in ctx.cache:
        import importlib

        from invertkit.diffusion.guidance import Guidance
        from invertkit.diffusion.state import SAMPLERS, make_setup

        G, _, _ = _model(ctx)
        opts = SAMPLERS.get(method).options(steps=STEPS, guidance=GUIDANCE, **METHODS[method])
        g = Guidance(cond=_embeds(G, prompts), uncond=G.cond(""), scale=GUIDANCE)
        setup = make_setup(G, opts, pad_28_to_32(images), guidance=g)
        setup.image_ids = list(range(images.shape[0]))
        module = importlib.import_module(f"invertkit.methods.diffusion.{method}")
        with torch.no_grad():
            ctx.cache[cache_key] = (setup, module.invert(setup))
    return ctx.cache[cache_key]


def _edit(ctx: Any, method: str, inverted: Any, edit_prompts: list[str], cross: float,  # noqa: ANN401
          blend: bool) -> tuple[Tensor, Tensor]:
    """Edits and reconstructions ``[N, 1, 28, 28]``: P2P replace (identity token map: the prompts differ in
    the digit's word only) with each image's own source and edit prompts, all in one batch."""
    from invertkit.diffusion.attention import P2POptions, PromptToPrompt, attention_edit

    G, _, _ = _model(ctx)
    setup, state = inverted
    tokens = int(setup.guidance.cond.shape[-2])
    # the digit's word is row 0 of every prompt, so local blending names it by that row for all images
    rows = ["digit"] + [""] * (tokens - 1) if blend else None
    opts = P2POptions(cross_steps=cross, self_steps=SELF_STEPS, blend=(("digit",), ("digit",)) if blend else None)
    controller = PromptToPrompt(opts, setup.grid.steps, tuple(state.x_T.shape[-2:]), (tokens, tokens), rows, rows)
    out = attention_edit(G, method, setup, state, controller, target_prompt=_embeds(G, edit_prompts), guidance=GUIDANCE)
    return crop_32_to_28(out.edited.cpu()), crop_32_to_28(out.source.cpu())


def p2p_route(sources: Tensor, targets: Tensor, ctx: Any, *, method: str,  # noqa: ANN401
              blend: bool = False, describe: bool = True) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """P2P word swap after ``method`` inversion; ``cross_steps`` calibrated (see the module docstring).
    Returns ``(edits, reconstructions, info)`` (``[N, 1, 28, 28]`` in [-1, 1])."""
    t0 = time.perf_counter()
    _model(ctx)
    cx, ct, cl = ctx.calibration()
    eligible = classify_digits(ctx.classifier, cx) != ct
    cx, ct, cl = cx[eligible][:CALIBRATION_DIGITS], ct[eligible][:CALIBRATION_DIGITS], cl[eligible][:CALIBRATION_DIGITS]
    c_src, c_tgt = _prompts(ctx, cx, cl, ct, describe)
    c_inv = _invert(ctx, f"calib-{cx.shape[0]}-{describe}", cx, c_src, method)
    curve = []
    for cross in CROSS_GRID:
        edited, _ = _edit(ctx, method, c_inv, c_tgt, cross, blend)
        curve.append({"value": cross, "success": round(float((classify_digits(ctx.classifier, edited) == ct).float().mean()), 4)})
    reaching = [c for c in curve if c["success"] >= SUCCESS_BAR]
    cross = (reaching[0] if reaching else max(curve, key=lambda c: (c["success"], c["value"])))["value"]
    setup = time.perf_counter() - t0
    labels = ctx.source_labels if ctx.source_labels is not None else classify_digits(ctx.classifier, sources)
    src, tgt = _prompts(ctx, sources, labels, targets, describe)
    inv = _invert(ctx, f"eval-{sources.shape[0]}-{hash(tuple(src))}", sources, src, method)
    edits, recons = _edit(ctx, method, inv, tgt, cross, blend)
    info = {"generator": "diffusion-mnist32", "inversion": f"{method} ({STEPS} steps, guidance {GUIDANCE}"
            + (", 10 null-text iterations per step" if method == "nulltext" else "") + ")",
            "edit": "Prompt-to-Prompt replace: the digit's word swapped" + (", its thickness and slant words kept" if describe else "")
                    + ("; local blend on the digit words" if blend else ""),
            "strength": cross, "strength_units": "cross_steps (share of steps with the source's cross-attention)",
            "self_steps": SELF_STEPS, "example_prompts": sorted(set(zip(src, tgt, strict=True)))[:3],
            "calibration": {"digits": f"the first {CALIBRATION_DIGITS} of MNIST test 4000-4199 not already of their target",
                            "rule": f"the largest cross_steps of {CROSS_GRID} with success >= {SUCCESS_BAR}, else the most successful",
                            "curve": curve},
            "setup_seconds": round(setup, 2)}
    return edits, recons, info
