"""Residual aligner: makes an fs encoder's feature residual follow an edit of its latent.

An fs-encoder inversion is ``tail(head(z) + r)``: the latent ``z`` and a residual ``r`` of the
generator's features at one layer (``encoders.nets.FeatureBranch``). Editing moves the latent to
``z + d``; re-adding ``r`` unchanged (HFGI's plain rule) keeps the details where they were while the
edit moves the face under them, which ghosts on large or spatial edits. HFGI (Wang et al. 2022) adds
an alignment module that adapts the residual to the edited image, and StyleFeatureEditor (Bobkov et al.
2024) a feature editor fed with the edited features; both are trained where the true edit is known.

:class:`ResidualAligner` is this library's small version of that idea:
``A(r, F_edit, F_orig) -> r'``, a convolutional net at the feature size that reads the residual, the
edited latent's features and their change ``F_edit - F_orig``, and predicts a flow that warps ``r``
(so details follow spatial edits), a per-pixel gain (fades details the edit removes) and an additive
correction. Every field is a *difference* ``h(r, F_edit, F_edit - F_orig) - h(r, F_orig, 0)``, so
``A(r, F, F) = r`` exactly for any weights: the unedited image is the encoder's reconstruction.

Training (:func:`train_aligner`, ``python -m invertkit.editing.aligner``) is self-supervised on faces
the generator draws, where the true edit is known: for ``x = G(z)`` the frozen fs encoder gives
``(z_hat, r)``; a random edit ``d`` (SeFa and GANSpace directions and random ones, random strengths) is
applied and ``tail(head(z_hat + d) + A(r, ...))`` is pulled to ``G(z + d)`` (pixels) and its features
to ``head(z + d)``.

Files: ``<encoder stem>.aligner.safetensors`` beside the fs encoder file it was trained for (the
shipped one: ``weights/<generator>/fs.aligner.safetensors``); the JSON header holds the config,
including that encoder file's sha256 (an aligner for other weights is refused, or skipped by the
automatic choice with a warning). Nothing in the file executes; tensor shapes are checked against the
config before anything is read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..errors import CheckpointError, ConfigError
from ..io.safetensors_file import check_weights_fit, read_header, read_safetensors, write_safetensors
from ..results import LatentInversion
from ..untrusted import one_line, short_repr

METADATA_KEY = "invertkit_aligner"
FORMAT_VERSION = 1
SUFFIX = ".aligner.safetensors"
MODES = ("auto", "aligned", "raw")  # how an fs result's residual follows an edit
FLOW_SCALE = 0.1  # flow outputs are in units of a tenth of the feature map (grid_sample's [-1, 1] coordinates)


@dataclass(frozen=True)
class AlignerConfig:
    """A residual aligner: the features it works on and the fs encoder file it was trained for.

    Attributes:
        generator: name of the generator (for messages).
        layer: the split layer of the fs encoder (``EncoderConfig.layer``).
        feature_shape: ``(channels, height, width)`` of the features there.
        width: hidden channels of the net.
        encoder_sha256: sha256 of the fs encoder file whose residuals it was trained on.
    """

    generator: str
    layer: str
    feature_shape: tuple[int, int, int]
    width: int = 64
    encoder_sha256: str = ""

    def __post_init__(self) -> None:
        if len(self.feature_shape) != 3 or min(self.feature_shape) < 1 or max(self.feature_shape) > 1 << 13:
            raise ConfigError(f"aligner feature_shape must be (channels, height, width), got {self.feature_shape}")
        if not 1 <= self.width <= 1024:
            raise ConfigError(f"aligner width must be between 1 and 1024, got {self.width}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any, *, where: str) -> AlignerConfig:
        if not isinstance(d, dict) or set(d) != {f.name for f in dataclasses.fields(cls)}:
            got = sorted(d) if isinstance(d, dict) else type(d).__name__
            raise CheckpointError(f"{where}: the aligner config is not the expected JSON object (fields {short_repr(got)})")
        try:
            for k in ("generator", "layer", "encoder_sha256"):
                if not isinstance(d[k], str) or len(d[k]) > 200:
                    raise TypeError(f"{k} must be a short string")
            shape = d["feature_shape"]
            if (not isinstance(shape, list) or len(shape) != 3
                    or any(type(x) is not int for x in shape) or type(d["width"]) is not int):
                raise TypeError(f"feature_shape must be 3 integers and width an integer, got {short_repr(shape)}, {short_repr(d['width'])}")
            return cls(d["generator"], d["layer"], (shape[0], shape[1], shape[2]), d["width"], d["encoder_sha256"])
        except (TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(f"{where}: invalid aligner config ({one_line(exc, 200)})") from exc


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ResidualAligner(nn.Module):
    """``A(r, F_edit, F_orig) -> r'`` (all ``N x C x H x W``); exactly ``r`` when ``F_edit == F_orig``."""

    def __init__(self, config: AlignerConfig) -> None:
        super().__init__()
        self.config = config
        self.meta: dict[str, Any] = {}
        self.source = ""
        c, w = config.feature_shape[0], config.width
        # input scales (set from training data): the net sees residual and features at unit size
        self.register_buffer("r_scale", torch.ones(()))
        self.register_buffer("f_scale", torch.ones(()))
        self.inp = nn.Sequential(nn.Conv2d(3 * c, w, 3, 1, 1), _act())
        self.block = nn.Sequential(nn.Conv2d(w, w, 3, 1, 1), _act(), nn.Conv2d(w, w, 3, 1, 1))
        self.down = nn.Sequential(nn.Conv2d(w, w, 3, 2, 1), _act(), nn.Conv2d(w, w, 3, 1, 1), _act())
        self.mix = nn.Sequential(nn.Conv2d(w, w, 3, 1, 1), _act())
        self.out = nn.Conv2d(w, 3 + c, 3, 1, 1)  # flow (2), gain (1), additive correction (C)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _fields(self, r: Tensor, f: Tensor, df: Tensor) -> Tensor:
        x = torch.cat([r / self.r_scale, f / self.f_scale, df / self.f_scale], 1)
        h = self.inp(x)
        h = F.leaky_relu(h + self.block(h), 0.2)
        low = self.down(h)
        h = h + F.interpolate(low, size=h.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(self.mix(h))

    def forward(self, residual: Tensor, edited: Tensor, original: Tensor) -> Tensor:
        c = self.config.feature_shape
        if residual.dim() != 4 or tuple(residual.shape[1:]) != c or edited.shape != residual.shape or original.shape != residual.shape:
            raise ConfigError(f"the residual aligner takes residual and features of shape N x {c[0]} x {c[1]} x {c[2]}, "
                              f"got {list(residual.shape)}, {list(edited.shape)}, {list(original.shape)}")
        n = residual.shape[0]
        both = self._fields(torch.cat([residual, residual]), torch.cat([edited, original]),
                            torch.cat([edited - original, torch.zeros_like(original)]))
        delta = both[:n] - both[n:]  # exactly zero where the edit changes nothing
        flow = delta[:, :2].permute(0, 2, 3, 1) * FLOW_SCALE
        gain, add = delta[:, 2:3], delta[:, 3:] * self.r_scale
        eye = torch.eye(2, 3, device=residual.device, dtype=residual.dtype).expand(n, 2, 3)
        grid = F.affine_grid(eye, list(residual.shape), align_corners=False)
        kw = {"mode": "bilinear", "padding_mode": "border", "align_corners": False}
        warped = residual + F.grid_sample(residual, grid + flow, **kw) - F.grid_sample(residual, grid, **kw)
        return warped * (1 + gain) + add

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---- files ---------------------------------------------------------------------------------------
def aligner_path(encoder_file: str | os.PathLike[str]) -> Path:
    """Where the aligner of an fs encoder file sits: ``fs.safetensors`` -> ``fs.aligner.safetensors``."""
    p = Path(encoder_file)
    stem = p.name[: -len(".safetensors")] if p.name.endswith(".safetensors") else p.name
    return p.with_name(stem + SUFFIX)


def save_aligner(aligner: ResidualAligner, path: str | os.PathLike[str], *, meta: dict[str, Any] | None = None,
                 half: bool = False) -> Path:
    """Write ``aligner`` (float16 with ``half``, as shipped) with its config and ``meta`` in the header."""
    payload = {"format_version": FORMAT_VERSION, "config": aligner.config.to_dict(), "meta": meta or {}}
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in aligner.state_dict().items()}
    return write_safetensors(Path(path), tensors, {METADATA_KEY: json.dumps(payload, sort_keys=True)}, "aligner file")


def load_aligner(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> ResidualAligner:
    """Build the aligner a file describes and load its weights strictly (eval mode, no gradients).

    Raises:
        CheckpointError: missing or malformed file, a config that builds no net, tensors that do not
            fit it (shape, dtype, NaN/Inf).
    """
    p = Path(path)
    hint = "train one with `python -m invertkit.editing.aligner`"
    entries, payload = read_header(p, METADATA_KEY, "aligner file", hint, format_version=FORMAT_VERSION)
    config = AlignerConfig.from_dict(payload.get("config"), where=str(p))
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ResidualAligner(config).state_dict().items()}
    check_weights_fit(p, expected, entries, "aligner")
    tensors, _ = read_safetensors(p, METADATA_KEY, "aligner file", "train one with `python -m invertkit.editing.aligner`")
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{p}: the aligner weights contain NaN or Inf ({bad[0]}); the file is damaged or was edited")
    net = ResidualAligner(config)
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    net.meta = payload.get("meta") if isinstance(payload.get("meta"), dict) else {}
    net.source = str(p)
    return net.eval().requires_grad_(False).to(device)


def ship_aligner(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Copy a trained aligner to ``dst`` in float16 (how the package ships it, beside its fs encoder)."""
    net = load_aligner(src)
    return save_aligner(net, dst, meta={**net.meta, "shipped_from": str(src), "stored_as": "float16"}, half=True)


_CACHE: dict[tuple[str, float, str], ResidualAligner] = {}  # loaded aligners by (file, mtime, device)
_SHA: dict[tuple[str, float], str] = {}  # encoder files' sha256 by (file, mtime)


def _cached(path: Path, device: torch.device | str) -> ResidualAligner:
    # keyed by the file's modification time too: a retrained aligner is read again
    key = (str(path.resolve()), path.stat().st_mtime, str(device))
    if key not in _CACHE:
        _CACHE[key] = load_aligner(path, device)
    return _CACHE[key]


def _sha256(path: Path) -> str:
    """The file's sha256, remembered per (path, modification time): edits call this per batch."""
    from ..encoders.files import file_sha256

    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _SHA:
        _SHA[key] = file_sha256(path)
    return _SHA[key]


def recorded_encoder(result: LatentInversion) -> Path | None:
    """The fs encoder file a layerwise result came from, as its run recorded it: ``config["encoder"]``
    (fs-encoder), or its pivot's (``config["pivot_config"]["encoder"]``: hyperstyle on an fs pivot);
    None when nothing is recorded or the file is gone."""
    config = result.config if isinstance(result.config, dict) else {}
    pivot = config.get("pivot_config")
    for value in (config.get("encoder"), pivot.get("encoder") if isinstance(pivot, dict) else None):
        if isinstance(value, str) and value.endswith(".safetensors") and Path(value).is_file():
            return Path(value)
    return None


def find_aligner(G: Any, result: LatentInversion, mode: str = "auto") -> ResidualAligner | None:
    """The aligner for editing a layerwise result (``result.layer_state`` set: fs-encoder, hyperstyle on
    an fs pivot), or None for the raw re-add.

    ``mode``: ``"raw"`` (None), ``"aligned"`` (an aligner or ConfigError) or ``"auto"`` (the aligner when
    one fits, else None). Looked for beside the encoder file the run recorded (:func:`recorded_encoder`);
    when none is recorded or present (a bare latent file, a moved run), beside the fs encoder installed
    or shipped for ``G``. It must be for the result's layer and feature shape and have been trained for
    those exact encoder weights (sha256); ``"auto"`` skips one that was not, with a warning.
    """
    if mode not in MODES:
        raise ConfigError(f"residual mode {mode!r}: choose one of {', '.join(MODES)}")
    state = result.layer_state
    if mode == "raw" or state is None:
        return None
    encoder_file = recorded_encoder(result)
    if encoder_file is None:  # nothing recorded (a bare latent file), or moved: the fs encoder for G
        from ..encoders.shipped import find_encoder

        encoder_file = find_encoder(G, ("fs",))
    path = aligner_path(encoder_file) if encoder_file is not None else None
    if path is None or not path.is_file():
        if mode == "aligned":
            where = f"beside {encoder_file}" if encoder_file is not None else f"for {G.name} (no fs encoder file found)"
            raise ConfigError(f"no residual aligner {where}; train one with `python -m invertkit.editing.aligner "
                              "--generator GENERATOR --encoder FS_FILE --out DIR` and put it beside the encoder, or use the raw re-add")
        return None
    net = _cached(path, G.device)
    problem = None
    shape = tuple(state.tensors[0].shape[1:])
    if net.config.layer != state.layer or tuple(net.config.feature_shape) != shape:
        problem = (f"{path} aligns features of layer {net.config.layer} {list(net.config.feature_shape)}, "
                   f"this result's are layer {state.layer} {list(shape)}")
    elif net.config.encoder_sha256 != _sha256(encoder_file):  # type: ignore[arg-type]
        problem = f"{path} was trained for other weights than {encoder_file} (sha256 differs); retrain it for this encoder"
    if problem is not None:
        if mode == "aligned":
            raise ConfigError(problem)
        warnings.warn(f"{problem}; editing with the raw residual instead", stacklevel=2)
        return None
    return net


# ---- training ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlignerTrainOptions:
    steps: int = 1500
    batch: int = 24
    lr: float = 1e-3
    width: int = 64
    pool: int = 3072  # drawn faces encoded once (the encoder is frozen)
    directions: int = 10  # top SeFa and GANSpace directions sampled as edits
    max_strength: float = 3.0  # strengths in sigma units, uniform in [-max, max]
    feature_weight: float = 0.05  # weight of the feature loss (features normalised by their std)
    seed: int = 0
    save_every: int = 200  # steps between writes of OUT/aligner.safetensors (the last one is always written)


def _edit_bank(G: Any, space: str, k: int) -> Tensor:
    """``[D, *latent_shape]`` edit directions of one sigma: SeFa's and GANSpace's top ``k`` (W directions
    on every row of a W+ latent)."""
    from .ganspace import ganspace
    from .sefa import sefa

    shape = tuple(G.latent_shape(space))
    rows = []
    for d in (sefa(G, count=k), ganspace(G, components=k, samples=5000)):
        for i in range(min(k, len(d))):
            v = d.unit(i, "sigma")
            if d.space == space:
                rows.append(v.reshape(shape))
            elif d.space == "w" and space == "w+":
                rows.append(v.reshape(1, -1).expand(shape))
    if not rows:
        raise ConfigError(f"no SeFa / GANSpace directions in {space} for {G.name}; the aligner trains on those edits")
    return torch.stack(rows).to(G.device)


def random_edits(bank: Tensor, n: int, max_strength: float, rng: torch.Generator) -> Tensor:
    """``n`` edits: a bank direction (2/3 of them) or a random unit direction (1/3), at a strength
    uniform in ``[-max, max]`` with ``|s| >= 0.25``; a quarter get a second such edit added."""
    shape = bank.shape[1:]

    def one() -> Tensor:
        pick = torch.randint(0, bank.shape[0], (n,), generator=rng)
        rand = torch.randn((n, *shape), generator=rng)
        rand = rand / rand.flatten(1).norm(dim=1).reshape(-1, *[1] * len(shape))
        use_bank = (torch.rand(n, generator=rng) < 2 / 3).reshape(-1, *[1] * len(shape))
        direction = torch.where(use_bank, bank.cpu()[pick], rand)
        s = (torch.rand(n, generator=rng) * 2 - 1) * max_strength
        s = torch.where(s.abs() < 0.25, 0.25 * torch.sign(s + 1e-6), s)
        return direction * s.reshape(-1, *[1] * len(shape))

    d = one()
    second = (torch.rand(n, generator=rng) < 0.25).reshape(-1, *[1] * len(shape))
    return (d + second * one()).to(bank.device)


def train_aligner(G: Any, encoder_file: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                  options: AlignerTrainOptions | None = None, *, log: Any = print) -> Path:
    """Train a :class:`ResidualAligner` for the fs encoder ``encoder_file`` (frozen) on ``G``'s faces;
    writes ``OUT/aligner.safetensors`` (float32; also every ``save_every`` steps) and ``OUT/log.jsonl``;
    returns the file's path."""
    from ..encoders.files import file_sha256
    from ..encoders.inference import encode_features, feature_split, tail_latent
    from ..encoders.shipped import check_compatible, resolve_encoder

    o = options or AlignerTrainOptions()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    enc = resolve_encoder(G, str(encoder_file), ("fs",))
    check_compatible(enc, G, str(encoder_file))
    split = feature_split(enc, G)
    space = enc.config.space
    torch.manual_seed(o.seed)
    rng = torch.Generator().manual_seed(o.seed + 12345)
    t0 = time.perf_counter()
    zs, zh, rs = [], [], []
    with torch.no_grad():  # the pool: drawn faces, their latents and residuals under the frozen encoder
        for s in range(0, o.pool, 64):
            z = torch.randn((min(64, o.pool - s), *G.latent_shape("z")), generator=rng).to(G.device)
            lat = G.convert(z, "z", space)
            x = G.synthesize(lat, space).clamp(-1, 1)
            latent, residual, _, _ = encode_features(enc, G, x, split=split)
            zs.append(lat)
            zh.append(latent)
            rs.append(residual.half())
    lat_true, lat_hat, res = torch.cat(zs), torch.cat(zh), torch.cat(rs)
    with torch.no_grad():
        f0 = split.head(lat_hat[:256], space)[0]
    config = AlignerConfig(G.name, str(enc.config.layer), tuple(enc.config.feature_shape), o.width, file_sha256(encoder_file))  # type: ignore[arg-type]
    net = ResidualAligner(config).to(G.device)
    net.r_scale.fill_(float(res[:256].float().std()))
    net.f_scale.fill_(float(f0.std()))
    log(f"pool of {o.pool} faces encoded in {time.perf_counter() - t0:.0f} s; residual std {float(net.r_scale):.4f}, "
        f"feature std {float(net.f_scale):.4f}; aligner params {net.parameter_count():,}")
    bank = _edit_bank(G, space, o.directions)
    opt = torch.optim.Adam(net.parameters(), lr=o.lr)
    f_scale = float(net.f_scale)
    logf = open(out / "log.jsonl", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    t0 = time.perf_counter()

    def save(done: int) -> Path:
        meta = {"options": dataclasses.asdict(o), "encoder": str(encoder_file), "trained_steps": done,
                "train_seconds": round(time.perf_counter() - t0, 1)}
        path = save_aligner(net, out / "aligner.safetensors", meta=meta)
        net.train()
        return path

    try:
        for step in range(o.steps):
            for g in opt.param_groups:  # cosine decay to 5%
                g["lr"] = o.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / o.steps)))
            idx = torch.randint(0, o.pool, (o.batch,), generator=rng)
            z, zhat, r = lat_true[idx], lat_hat[idx], res[idx].float()
            d = random_edits(bank, o.batch, o.max_strength, rng)
            with torch.no_grad():
                true_state = split.head(z + d, space)
                target = split.tail(true_state, tail_latent(G, split, z + d, space))
                edited_state = split.head(zhat + d, space)
                orig = split.head(zhat, space)[0]
            aligned = net(r, edited_state[0], orig)
            state = (edited_state[0] + aligned, *edited_state[1:])
            image = split.tail(state, tail_latent(G, split, zhat + d, space))
            pix = (image - target).square().mean()
            feat = ((state[0] - true_state[0]) / f_scale).square().mean()
            loss = pix + o.feature_weight * feat
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step % 50 == 0 or step == o.steps - 1:
                with torch.no_grad():
                    raw = split.tail((edited_state[0] + r, *edited_state[1:]), tail_latent(G, split, zhat + d, space))
                    raw_pix = float((raw - target).square().mean())
                rec = {"step": step, "pixel": float(pix.detach()), "feature": float(feat.detach()), "raw_pixel": raw_pix,
                       "seconds": round(time.perf_counter() - t0, 1)}
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                log(f"step {step}: pixel mse {rec['pixel']:.5f} (raw re-add {raw_pix:.5f}), feature {rec['feature']:.4f}, "
                    f"{rec['seconds']:.0f} s")
            if (step + 1) % o.save_every == 0 and step + 1 < o.steps:
                save(step + 1)
    finally:
        logf.close()
    return save(o.steps)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ..generators import load_generator

    p = argparse.ArgumentParser(prog="python -m invertkit.editing.aligner",
                                description="Train a residual aligner for an fs encoder (edits of fs-encoder inversions follow the edit).")
    p.add_argument("--generator", "-g", required=True)
    p.add_argument("--weights", default=None)
    p.add_argument("--encoder", default="auto", help="the fs encoder file (default: the installed or shipped one)")
    p.add_argument("--out", required=True)
    p.add_argument("--ship", default=None, help="also write a float16 copy here (beside the encoder: <stem>.aligner.safetensors)")
    defaults = AlignerTrainOptions()
    for f in dataclasses.fields(AlignerTrainOptions):
        p.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name))
    args = p.parse_args(argv)
    G = load_generator(args.generator, weights=args.weights)
    encoder_file = args.encoder
    if encoder_file == "auto":
        from ..encoders.shipped import find_encoder

        found = find_encoder(G, ("fs",))
        if found is None:
            raise SystemExit(f"no fs encoder for {G.name}; pass --encoder FILE")
        encoder_file = str(found)
    opts = AlignerTrainOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(AlignerTrainOptions)})
    path = train_aligner(G, encoder_file, args.out, opts)
    print(path)
    if args.ship:
        print(ship_aligner(path, args.ship))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
