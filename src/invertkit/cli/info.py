"""``invertkit info CHECKPOINT``: format, architecture, resolution, latent spaces, parameter count."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a checkpoint file or zoo model",
                       description="Describe a checkpoint file, zoo model, diffusers folder or directions file: format, "
                       "architecture, resolution, latent spaces, capabilities and parameter count (--json: everything).")
    p.add_argument("checkpoint", help="checkpoint path (.pkl, .pt, .safetensors), zoo name, diffusers:FOLDER or analytic:diffusion|flow")
    p.add_argument("--weights", default=None, help="weight file for a zoo model that needs one")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def describe(source: str, weights: str | None = None) -> dict[str, Any]:
    """What ``info`` prints, as a dict."""
    from ..diffusion.model import DiffusionModel
    from ..generators.loading import SCHEMES, load_generator
    from ..generators.simple import SimpleGenerator
    from ..generators.zoo import ZOO

    scheme = source.partition(":")[0] if ":" in source else ""
    if scheme in SCHEMES or source in ZOO:
        G = load_generator(source, weights=weights)
        if isinstance(G, DiffusionModel):  # diffusion models describe themselves
            kind = "analytic" if scheme == "analytic" else "diffusers folder"
            return {"source": source, "format": kind, **G.describe(),
                    **({"provenance": ZOO.get(source).source} if source in ZOO else {})}
        entry = ZOO.get(source)
        params = sum(int(v.numel()) for k, v in G.weights().items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        arch = type(G.module).__name__ if isinstance(G, SimpleGenerator) else type(G).__name__
        return {"source": source, "format": "zoo", "architecture": arch, **G.describe(),
                "parameters": params, "weights": str(entry.locate(weights)), "provenance": entry.source}

    from ..generators.checkpoints import read_checkpoint
    from ..generators.stylegan2 import StyleGAN2Generator

    encoder = describe_encoder(source)
    if encoder is not None:
        return encoder
    directions = describe_directions(source)
    if directions is not None:
        return directions
    family = describe_family(source)
    if family is not None:
        return family
    loaded = read_checkpoint(source)
    G = StyleGAN2Generator(loaded.config, loaded.state_dict, name=source)
    cfg = loaded.config
    n_map = sum(v.numel() for k, v in loaded.state_dict.items() if k.startswith("mapping.") and not k.endswith("w_avg"))
    n_syn = sum(p.numel() for n, p in G.net.named_parameters() if n.startswith("synthesis."))
    return {
        "source": source,
        "format": loaded.format,
        "architecture": f"StyleGAN2 ({cfg.architecture})",
        **G.describe(),
        "z_dim": cfg.z_dim,
        "w_dim": cfg.w_dim,
        "c_dim": cfg.c_dim,
        "num_ws": cfg.num_ws,
        "mapping_layers": cfg.mapping_layers,
        "channels_per_resolution": {r: cfg.channels_at(r) for r in cfg.block_resolutions},
        "parameters": n_map + n_syn,
        "parameters_mapping": n_map,
        "parameters_synthesis": n_syn,
        "config": cfg.to_dict(),
        "meta": loaded.meta,
    }


# buffers of the families' state dicts: statistics and power-iteration vectors, not parameters
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked", "running_means", "running_vars", "weight_u", "weight_v")


def describe_family(source: str) -> dict[str, Any] | None:
    """What ``info`` prints for a checkpoint of a registered family (BigGAN ...), or None if none claims it."""

    from ..generators.checkpoints.families import claimed_by

    family = claimed_by(Path(source))
    if family is None:
        return None
    G = family.build(Path(source), "cpu")
    params = sum(int(v.numel()) for k, v in G.weights().items() if not k.endswith(_BUFFER_SUFFIXES))
    return {"source": source, "format": family.label, "architecture": type(G).__name__, **G.describe(), "parameters": params}


def _has_header(source: str, key: str) -> bool:
    """Whether ``source`` is a readable .safetensors whose header carries ``key``."""
    if not source.endswith(".safetensors"):
        return False
    try:
        from safetensors import safe_open

        with safe_open(source, framework="pt") as f:
            return key in (f.metadata() or {})
    except Exception:  # noqa: BLE001 - not a readable safetensors: the checkpoint reader says why
        return False


def describe_directions(source: str) -> dict[str, Any] | None:
    """What ``info`` prints for an edit-directions file, or None if ``source`` is not one."""
    from ..editing.directions import METADATA_KEY, load_directions

    if not _has_header(source, METADATA_KEY):
        return None
    d = load_directions(source)
    return {"source": source, "format": "invertkit directions", "method": d.method, "space": d.space,
            "generator": d.generator.get("name"), "layers": None if d.layers is None else list(d.layers),
            "directions": [{"name": n, "value": round(float(v), 4), "sigma": round(float(s), 4)}
                           for n, v, s in zip(d.names, d.values, d.sigmas, strict=True)], "info": d.info}


def describe_encoder(source: str) -> dict[str, Any] | None:
    """What ``info`` prints for an encoder file, or None if ``source`` is not one."""
    from ..encoders.files import METADATA_KEY, load_encoder

    if not _has_header(source, METADATA_KEY):
        return None
    enc = load_encoder(source)
    c = enc.config
    return {"source": source, "format": "invertkit encoder", "architecture": f"{c.arch} encoder for {c.generator}",
            "resolution": c.resolution, "channels": c.channels, "space": c.space, "latent_shape": list(c.latent_shape),
            "widths": list(c.widths), "parameters": enc.parameter_count(),
            "trained_steps": enc.meta.get("trained_steps"), "heldout_psnr": enc.meta.get("heldout_psnr"),
            "bootstrap": c.bootstrap}


def run(args: argparse.Namespace) -> int:
    d = describe(args.checkpoint, args.weights)
    if args.json:
        print(json.dumps(d, indent=2, default=str))
        return 0
    if d["format"] == "invertkit directions":
        rows = "all" if d["layers"] is None else ",".join(map(str, d["layers"]))
        print(f"{d['source']}\n  format:        {d['format']}\n  method:        {d['method']} (for {d['generator']})")
        print(f"  space:         {d['space']}" + (f", W+ rows {rows}" if d["space"] == "w" else ""))
        for i, x in enumerate(d["directions"][:10]):
            print(f"  {i:>3}  {x['name']:<24} value {x['value']:<10g} sigma {x['sigma']:g}")
        if len(d["directions"]) > 10:
            print(f"  ... {len(d['directions']) - 10} more (--json lists all)")
        return 0
    if d["format"] == "invertkit encoder":
        print(f"{d['source']}\n  format:        {d['format']}\n  architecture:  {d['architecture']}")
        print(f"  input:         {d['resolution']}x{d['resolution']}, {d['channels']} channel(s)")
        print(f"  predicts:      {d['space']} {d['latent_shape']}")
        print(f"  parameters:    {d['parameters']:,}")
        print(f"  trained:       {d['trained_steps']} steps, held-out PSNR {d['heldout_psnr']} dB")
        if d["bootstrap"]:
            print(f"  starts from:   {d['bootstrap']} (its latents are refined; the file sits beside this one)")
        return 0
    if "family" in d:  # a diffusion model or rectified flow
        print(f"{d['source']}\n  format:        {d['format']}")
        print(f"  model:         {d.get('network', 'closed-form Gaussian data')} ({d['family']}, predicts {d['prediction_type']}), "
              f"scheduler {d['scheduler']}{', latent (VAE)' if d.get('latent_model') else ''}")
        print(f"  images:        {d['resolution']}x{d['resolution']}, {d['channels']} channel(s); noise latent {d['latent_shapes']['noise']}")
        print("  prompts:       " + (", ".join(repr(p) for p in d.get("prompts", [])) or "none (unconditional)"))
        print("  capabilities:  " + ", ".join(d.get("capabilities", [])))
        if "parameters" in d:
            print(f"  parameters:    {d['parameters']:,}")
        return 0
    shapes = d.get("latent_shapes", {})
    print(f"{d['source']}")
    print(f"  format:        {d['format']}")
    print(f"  architecture:  {d['architecture']}")
    print(f"  resolution:    {d['resolution']}x{d['resolution']}, {d['channels']} channel(s)")
    print("  latent spaces: " + ", ".join(f"{s} {list(shapes.get(s, []))}" for s in d["spaces"]))
    print("  capabilities:  " + (", ".join(d.get("capabilities", [])) or "none beyond a Generator"))
    if d.get("num_classes"):
        print(f"  conditional:   {d['num_classes']} classes (class_index, or the class embedding inside zc); truncation {d['truncation']}")
    if "c_dim" in d and d["c_dim"]:
        print(f"  conditional:   c_dim={d['c_dim']} (pass a label)")
    if "channels_per_resolution" in d:
        print("  channels:      " + ", ".join(f"{r}:{c}" for r, c in d["channels_per_resolution"].items()))
    print(f"  parameters:    {d['parameters']:,}")
    return 0
