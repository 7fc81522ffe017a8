"""``invertkit directions METHOD -g G --out FILE.safetensors``: find edit directions (SeFa, GANSpace,
InterFaceGAN, StyleSpace) and save them for ``invertkit edit``."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..errors import ConfigError
from .edit import parse_direction_spec
from .options import add_generator_flags

METHODS = ("sefa", "ganspace", "interfacegan", "stylespace")

# flag (dest) -> methods it applies to; a flag given to another method is refused by name
APPLIES: dict[str, tuple[str, ...]] = {
    "layers": ("sefa", "stylespace"),
    "count": ("sefa",),
    "samples": ("ganspace", "interfacegan", "stylespace"),
    "components": ("ganspace",),
    "feature_layer": ("ganspace",),
    "classifier": ("interfacegan", "stylespace"),
    "target": ("interfacegan", "stylespace"),
    "labels": ("interfacegan",),
    "latents": ("interfacegan",),
    "space": ("interfacegan",),
    "ratio": ("interfacegan",),
    "label_by": ("interfacegan",),
    "condition": ("interfacegan",),
    "name": ("interfacegan",),
    "mask": ("stylespace",),
    "channel": ("stylespace",),
    "top": ("stylespace",),
    "seed": ("ganspace", "interfacegan", "stylespace"),
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "directions",
        help="find edit directions (sefa, ganspace, interfacegan, stylespace) and save them to a .safetensors file",
        description="Find edit directions for a generator. sefa: closed form from the weights; ganspace: PCA of "
        "sampled W (or of a z-only generator's features); interfacegan: SVM normal from a classifier's labels "
        "or a CSV of labels; stylespace: single style channels, chosen by a classifier, a region mask or by name. "
        "Unset options keep each method's defaults.",
    )
    p.add_argument("method", choices=METHODS, metavar="METHOD", help=" | ".join(METHODS))
    add_generator_flags(p)
    p.add_argument("--out", "-o", required=True, help="directions file to write (.safetensors)")
    g = p.add_argument_group("sefa")
    g.add_argument("--layers", default=None,
                   help="sefa: W+ rows whose weights are factorised (all, coarse, middle, fine, 0-3 ...); "
                   "stylespace: candidate style layers (b16.conv0, b16, all; default the convolutions)")
    g.add_argument("--count", type=int, default=None, help="sefa: directions kept (default all)")
    g = p.add_argument_group("ganspace")
    g.add_argument("--samples", type=int, default=None,
                   help="latents sampled (ganspace default 10000, interfacegan 5000, stylespace 2000 with a classifier, 8 per channel with a mask)")
    g.add_argument("--components", type=int, default=None, help="ganspace: principal components kept (default 20)")
    g.add_argument("--feature-layer", default=None, help="ganspace, z-only generators: layer whose activations are analysed")
    g = p.add_argument_group("interfacegan")
    g.add_argument("--classifier", default=None, help="interfacegan, stylespace: labels from a classifier: lenet5 or lenet5:PATH")
    g.add_argument("--target", type=int, default=None, help="class of a K-class classifier that is the attribute")
    g.add_argument("--labels", default=None, help="interfacegan: CSV of latent_id,label rows instead of a classifier")
    g.add_argument("--latents", default=None,
                   help="interfacegan with --labels: where the ids point (an .npy/.npz array, a folder of latent files or a run folder; default: ids are seeds)")
    g.add_argument("--space", default=None, help="interfacegan: z or w (default w where the generator has it)")
    g.add_argument("--label-by", default=None, choices=["decision", "score"],
                   help="interfacegan with --classifier: label every sample by the classifier's decision (default), "
                   "or keep the top and bottom --ratio by score (the paper's recipe)")
    g.add_argument("--ratio", type=float, default=None, help="interfacegan: share of top and bottom scores used (default 0.1)")
    g.add_argument("--condition", action="append", default=None, metavar="FILE[:INDEX]",
                   help="interfacegan: make the direction orthogonal to these directions (repeatable)")
    g.add_argument("--name", default=None, help="interfacegan: the direction's name (default 'class K' or the CSV's name)")
    g = p.add_argument_group("stylespace")
    g.add_argument("--mask", default=None, help="stylespace: region image (white = region): channels acting there")
    g.add_argument("--channel", action="append", default=None, metavar="LAYER:C",
                   help="stylespace: a style channel by name, e.g. b16.conv0:12 (repeatable)")
    g.add_argument("--top", type=int, default=None, help="stylespace: channels kept (default 10)")
    p.add_argument("--seed", type=int, default=None, help="seed of the sampled latents (default 0)")
    p.set_defaults(func=run)


def _check_flags(args: argparse.Namespace) -> dict[str, object]:
    """The options given on the command line; refuses those the chosen method does not take."""
    given = {k: getattr(args, k) for k in APPLIES if getattr(args, k) is not None}
    wrong = sorted(k for k in given if args.method not in APPLIES[k])
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        takes = ", ".join("--" + k.replace("_", "-") for k, m in APPLIES.items() if args.method in m)
        raise ConfigError(f"{flags} do(es) not apply to {args.method}; its options: {takes}")
    return given


def _pick(given: dict[str, object], **names: str) -> dict[str, object]:
    """Keyword arguments for a discovery function: ``{function arg: given[flag]}`` for the flags given."""
    return {arg: given[flag] for arg, flag in names.items() if flag in given}


def _only(given: dict[str, object], allowed: tuple[str, ...], mode: str) -> None:
    extra = sorted(k for k in given if k not in allowed)
    if extra:
        raise ConfigError(f"{', '.join('--' + k.replace('_', '-') for k in extra)} do(es) not apply to {mode}")


def run(args: argparse.Namespace) -> int:
    from ..editing.directions import save_directions
    from ..generators import load_generator

    given = _check_flags(args)
    out = Path(args.out)
    if out.suffix.lower() != ".safetensors":
        raise ConfigError(f"--out {out}: directions are written as .safetensors; name the file e.g. {out.with_suffix('.safetensors').name}")
    G = load_generator(args.generator, device=args.device, weights=args.weights)
    d = {"sefa": _sefa, "ganspace": _ganspace, "interfacegan": _interfacegan, "stylespace": _stylespace}[args.method](G, given, args)
    for i, (name, value) in enumerate(zip(d.names, d.values.tolist())):
        print(f"{i:4d}  {name:<32} {value:.4g}")
    path = save_directions(d, out)
    print(f"wrote {path} ({len(d)} {d.method} direction(s) in {d.space})")
    return 0


def _sefa(G, given, args):  # noqa: ANN001, ANN202
    from ..editing.sefa import sefa

    return sefa(G, **_pick(given, layers="layers", count="count"))


def _ganspace(G, given, args):  # noqa: ANN001, ANN202
    from ..editing.ganspace import ganspace

    return ganspace(G, **_pick(given, samples="samples", components="components", feature_layer="feature_layer", seed="seed"))


def _interfacegan(G, given, args):  # noqa: ANN001, ANN202
    from ..editing import interfacegan as ifg

    if (args.classifier is None) == (args.labels is None):
        raise ConfigError("interfacegan needs labels: either --classifier SPEC (with --target K for a K-class "
                          "classifier) or --labels CSV (rows latent_id,label)")
    if args.classifier is not None:
        _only(given, ("classifier", "target", "space", "samples", "label_by", "ratio", "seed", "condition", "name"), "--classifier")
        from ..editing.classifiers import load_classifier

        clf = load_classifier(args.classifier, device=args.device)
        d = ifg.interfacegan_from_classifier(G, clf, source=f"classifier {args.classifier}",
                                             **_pick(given, target="target", space="space", n="samples",
                                                     label_by="label_by", ratio="ratio",
                                                     seed="seed", name="name"))
    else:
        _only(given, ("labels", "latents", "space", "ratio", "seed", "condition", "name"), "--labels")
        labels = ifg.labels_from_csv(args.labels)
        from ..generators.capabilities import StyleSpaces

        space = args.space or ("w" if isinstance(G, StyleSpaces) else "z")
        latents = ifg.latents_for_ids(G, list(labels), space, args.latents)
        d = ifg.interfacegan(G, space, latents, ifg.labels_tensor(list(labels.values())), source=str(args.labels),
                             name=args.name or Path(args.labels).stem, **_pick(given, ratio="ratio", seed="seed"))
    if args.condition:
        from ..editing.directions import load_directions

        on = []
        for spec in args.condition:
            file, indices = parse_direction_spec(spec)
            other = load_directions(file, G)
            on.extend([other] if indices is None else [other.select(i) for i in indices])
        d = ifg.conditioned(d, 0, on, G=G)
    return d


def _stylespace(G, given, args):  # noqa: ANN001, ANN202
    from ..editing import stylespace as ss

    modes = [m for m in ("classifier", "mask", "channel") if m in given]
    if len(modes) != 1:
        raise ConfigError("stylespace picks channels one way: --classifier SPEC [--target K], --mask REGION.png "
                          "or --channel LAYER:C" + (f" (got {', '.join('--' + m for m in modes)})" if modes else ""))
    if modes == ["classifier"]:
        _only(given, ("classifier", "target", "samples", "top", "seed", "layers"), "--classifier")
        from ..editing.classifiers import load_classifier

        clf = load_classifier(args.classifier, device=args.device)
        return ss.channels_for_classifier(G, clf, source=f"classifier {args.classifier}",
                                          **_pick(given, target="target", n="samples", top="top", seed="seed", layers="layers"))
    if modes == ["mask"]:
        _only(given, ("mask", "samples", "top", "seed", "layers"), "--mask")
        from ..io.images import read_image

        region = read_image(args.mask, G.resolution, 1)[0, 0] > 0  # white = region
        return ss.channels_for_mask(G, region, name=Path(args.mask).stem,
                                    **_pick(given, n="samples", top="top", seed="seed", layers="layers"))
    _only(given, ("channel",), "--channel")
    parts = [ss.channel_direction(G, *ss.parse_channel(spec)) for spec in args.channel]
    return _concat(parts)


def _concat(parts):  # noqa: ANN001, ANN202
    """Several single-direction files' worth of directions as one :class:`Directions`."""
    from ..editing.directions import Directions

    first = parts[0]
    if len(parts) == 1:
        return first
    return Directions(torch.cat([p.vectors for p in parts]), torch.cat([p.sigmas for p in parts]),
                      torch.cat([p.values for p in parts]), first.space, first.method,
                      [n for p in parts for n in p.names], first.layers, dict(first.generator),
                      {"selection": "channels", "channels": [p.info for p in parts]})
