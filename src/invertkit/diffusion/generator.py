"""Diffusion models and rectified flows behind the Generator interface.

A :class:`DiffusionGenerator` renders images from a **noise latent** (space ``"noise"``: the state at
the noisiest level of the sampler, ``[C_latent, h, w]``) by deterministic sampling: DDIM for
discrete-schedule diffusion models (epsilon / v / sample prediction) and Euler for rectified flows.
Inversion runs the other way (``invertkit.methods.diffusion_*``).

Beyond the GAN interface it offers what the diffusion methods need:

- ``denoiser(dtype)``: the network as a :class:`~invertkit.diffusion.parameterisation.Denoiser`
  ``(x, t, cond) -> output`` (a float64 copy of the network is made once on request);
- ``cond(prompt)``: a prompt name -> the conditioning the network takes (prompt embeddings; SD3-style
  transformers also take the pooled embedding), or, for a folder with a word table
  (``diffusers_io.WordTable``), any sentence of its words; ``prompt_words(prompt)``: the word of each
  embedding row; ``guidance(prompt, scale, negative)``;
- ``grid(steps)``: the level chain from the model's own scheduler config;
- ``encode`` / ``decode``: images <-> clean latents (identity for pixel-space models, the VAE with
  its scaling and shift factors for latent models).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from invertkit.diffusion.diffusers_io import DiffusersFolder, read_prompts, vae_scale
from invertkit.diffusion.guidance import CondPair, PairedDenoiser
from invertkit.diffusion.model import DTYPES, DiffusionModel, parse_dtype
from invertkit.diffusion.schedules import DiffusionGrid, FlowGrid, diffusion_grid, flow_grid, prediction_type
from invertkit.errors import ConfigError

__all__ = ["DTYPES", "DiffusionGenerator", "DiffusionModel", "load_diffusers", "parse_dtype"]


class DiffusionGenerator(DiffusionModel):
    """A diffusers-format denoiser (+ optional VAE) with its scheduler config and prompt embeddings.

    Attributes (besides DiffusionModel's):
        prompts: name -> embedding ``[tokens, width]`` (``pooled:<name>`` -> ``[width']``).
        words: the folder's word table (prompts composed of words), or None.
    """

    family_label = "diffusers model folders (diffusers:FOLDER, diffusers:ORG/NAME) and diffusion-faces32"

    def __init__(self, folder: DiffusersFolder, *, name: str | None = None, default_steps: int = 50,
                 resolution: int | None = None, distilled_guidance: float = 3.5) -> None:
        self.folder = folder
        self.network = folder.network
        self.network_class = folder.network_class
        self.family = folder.family
        self.scheduler = dict(folder.scheduler)
        self.prediction_type = "flow" if self.family == "flow" else prediction_type(self.scheduler)
        self.vae = folder.vae
        self.prompts = dict(folder.prompts)
        self.words = folder.words
        self.name = name or folder.path.name
        self.default_steps = default_steps
        # FLUX: the guidance-distilled models take the scale as an input (the FluxPipeline's default 3.5)
        self.distilled_guidance = distilled_guidance
        cfg = self.network.config
        # FLUX packs 2x2 latent cells into one token of 4x the channels; its config has no sample size
        # (the FluxPipeline's default is 128 latent cells, 1024 px)
        self._packed = self.network_class == "FluxTransformer2DModel"
        size = getattr(cfg, "sample_size", None) or 128
        size = size if isinstance(size, int) else size[0]
        scale = vae_scale(self.vae)
        if resolution is not None:
            step = scale * (2 if self._packed or self.network_class == "SD3Transformer2DModel" else 1)
            if resolution < step or resolution % step:
                raise ConfigError(f"{self.name}: resolution {resolution} must be a positive multiple of {step} for this model")
            size = resolution // scale
        channels = int(cfg.in_channels) // (4 if self._packed else 1)
        self._latent_shape = (channels, int(size), int(size))
        self.resolution = int(size) * scale
        self.channels = int(self.vae.config.in_channels) if self.vae is not None else channels
        self._copies: dict[torch.dtype, tuple[nn.Module, nn.Module | None]] = {}

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: torch.device | str) -> DiffusionGenerator:
        self.network.to(device)
        if self.vae is not None:
            self.vae.to(device)
        self._copies.clear()
        return self

    def describe(self) -> dict[str, object]:
        info = super().describe()
        info.update({
            "network": self.network_class, "latent_model": self.vae is not None,
            "prompts": sorted(k for k in self.prompts if not k.startswith("pooled:")),
            "parameters": sum(p.numel() for p in self.network.parameters()),
        })
        if self.words is not None:
            info["words"] = [w for w in self.words.vocabulary if w]
            info["max_tokens"] = self.words.max_tokens
        return info

    # ---- what diffusion methods use ----------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """Whether the network takes a condition (prompt embeddings, or class labels)."""
        return self.network_class != "UNet2DModel" or self.num_classes > 0

    @property
    def num_classes(self) -> int:
        """Classes of a class-conditional UNet2DModel (``num_class_embeds``), else 0."""
        return int(getattr(self.network.config, "num_class_embeds", None) or 0) if self.network_class == "UNet2DModel" else 0

    def weights(self) -> dict[str, Tensor]:
        """The denoiser's weights (``network.*``) and the VAE's (``vae.*``), and the prompt embeddings
        (``prompt.<name>``): everything that decides the images."""
        out = {f"network.{k}": v for k, v in self.network.state_dict().items()}
        if self.vae is not None:
            out.update({f"vae.{k}": v for k, v in self.vae.state_dict().items()})
        out.update({f"prompt.{k}": v for k, v in self.prompts.items()})
        if self.words is not None:
            out["words.token_embeds"] = self.words.embeds
        return out

    def add_prompts(self, path: str) -> None:
        """Add the named embeddings of a safetensors file (see ``diffusers_io.read_prompts``)."""
        self.prompts.update(read_prompts(path))

    def cond(self, prompt: str | Tensor | None, dtype: torch.dtype = torch.float32) -> Any:
        """The conditioning for ``prompt``: None for unconditional networks; an embedding tensor
        ``[tokens, width]`` (a prompt name, or a tensor passed through) for UNet2DConditionModel;
        ``(embeds, pooled)`` for SD3-style transformers. ``None`` means the empty prompt ``""``.

        With a word table, a prompt that is not a named embedding is a sentence of known words
        (``"three thick right"``): their rows, then padding rows (``""``: all padding, the null embedding)."""
        if not self.conditional:
            if prompt not in (None, ""):
                raise ConfigError(f"{self.name} is unconditional (UNet2DModel); drop the prompt {prompt!r}")
            return None
        if self.num_classes:  # class-conditional UNet2DModel: the "prompt" is a class index; there is no null class
            if isinstance(prompt, str) and prompt.isdigit() and int(prompt) < self.num_classes:
                return torch.tensor([int(prompt)], device=self.device)
            raise ConfigError(f"{self.name} is class-conditional: the prompt is a class index 0..{self.num_classes - 1}, "
                              f"got {prompt!r} (it has no empty class, so guidance needs --negative CLASS)")
        if isinstance(prompt, Tensor):
            return prompt.to(self.device, dtype)
        key = "" if prompt is None else prompt
        if key not in self.prompts and self.words is not None:
            return self.words.embed(key, self.name).to(self.device, dtype)
        if key not in self.prompts:
            known = ", ".join(repr(k) for k in sorted(self.prompts) if not k.startswith("pooled:")) or "none"
            raise ConfigError(f"{self.name}: no prompt embedding named {key!r} (known: {known}); add a file with --prompt-embeds FILE")
        embeds = self.prompts[key].to(self.device, dtype)
        if self.network_class in ("SD3Transformer2DModel", "FluxTransformer2DModel"):
            pooled = self.prompts.get(f"pooled:{key}")
            if pooled is None:
                raise ConfigError(f"{self.name}: prompt {key!r} has no pooled embedding 'pooled:{key}' (SD3/FLUX models need both)")
            return embeds, pooled.to(self.device, dtype)
        return embeds

    def prompt_words(self, prompt: str | None) -> list[str] | None:
        """The word of each row of ``cond(prompt)`` (``""`` for padding), None for a named precomputed
        embedding (it has no words) or a tensor; raises ConfigError for an unknown word, like ``cond``."""
        if isinstance(prompt, Tensor) or not self.conditional or self.num_classes:
            return None
        key = "" if prompt is None else prompt
        if key in self.prompts or self.words is None:
            return None
        return self.words.words(key, self.name)

    def _networks(self, dtype: torch.dtype) -> tuple[nn.Module, nn.Module | None]:
        if dtype == torch.float32:
            return self.network, self.vae
        if dtype not in self._copies:  # made once: float64 is for exactness checks, not speed
            # nn.Module.to, not diffusers' override: that one warns about casting without a reason here
            self._copies[dtype] = (nn.Module.to(copy.deepcopy(self.network), dtype),
                                   nn.Module.to(copy.deepcopy(self.vae), dtype) if self.vae is not None else None)
        return self._copies[dtype]

    def network_in(self, dtype: torch.dtype) -> nn.Module:
        """The denoising network :meth:`denoiser` runs in ``dtype`` (attention control installs its
        processors on it, and takes them off again)."""
        return self._networks(dtype)[0]

    def denoiser(self, dtype: torch.dtype = torch.float32):
        """The network as ``(x [N, *latent_shape], t [N], cond) -> output`` computed in ``dtype``."""
        net, kind = self._networks(dtype)[0], self.network_class

        def rows(cond: Any, n: int) -> Any:
            """``cond`` as this network's conditioning for a batch of ``n`` (a CondPair: uncond rows, then cond rows)."""
            if isinstance(cond, CondPair):
                u, c = rows(cond.uncond, n // 2), rows(cond.cond, n // 2)
                return tuple(torch.cat(p) for p in zip(u, c, strict=True)) if isinstance(u, tuple) else torch.cat([u, c])
            if kind == "UNet2DModel":  # class labels (guidance needs them for both branches)
                return cond.expand(n)
            if kind == "UNet2DConditionModel":
                return _batch(cond, n)
            embeds, pooled = cond
            return _batch(embeds, n), _batch(pooled, n, rank=1)  # pooled rows of an edit batch are [n, width]

        def run(x: Tensor, t: Tensor, cond: Any = None) -> Tensor:
            n = x.shape[0]
            t = t.to(x.device, dtype)
            if kind == "UNet2DModel":
                return net(x, t, class_labels=None if cond is None else rows(cond, n)).sample
            if kind == "UNet2DConditionModel":
                return net(x, t, encoder_hidden_states=rows(cond, n)).sample
            embeds, pooled = rows(cond, n)
            if kind == "SD3Transformer2DModel":
                return net(hidden_states=x, timestep=t, encoder_hidden_states=embeds, pooled_projections=pooled).sample
            # FLUX: time in [0, 1] (it scales by 1000 itself), packed tokens with their (row, column) ids
            g = torch.full((n,), self.distilled_guidance, dtype=dtype, device=x.device) if net.config.guidance_embeds else None
            out = net(hidden_states=pack(x), timestep=t / float(self.scheduler.get("num_train_timesteps", 1000)),
                      guidance=g, encoder_hidden_states=embeds, pooled_projections=pooled,
                      img_ids=token_ids(x.shape[-2] // 2, x.shape[-1] // 2, x), txt_ids=x.new_zeros(embeds.shape[-2], 3)).sample
            return unpack(out, x.shape)

        return PairedDenoiser(run)

    def grid(self, steps: int) -> DiffusionGrid | FlowGrid:
        """The model's own level chain (FLUX's shift depends on the number of image tokens)."""
        if self.family == "flow":
            h, w = self._latent_shape[1:]
            return flow_grid(self.scheduler, steps, image_seq_len=(h // 2) * (w // 2))
        return diffusion_grid(self.scheduler, steps)

    def encode(self, images: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """Clean latents ``[N, *latent_shape]`` of images ``N x C x H x W`` in [-1, 1] (the VAE posterior
        mean, shifted and scaled as the model was trained; the images themselves without a VAE)."""
        vae = self._networks(dtype)[1]
        images = images.to(self.device, dtype)
        if vae is None:
            return images
        with torch.no_grad():
            z = vae.encode(images).latent_dist.mean
        return (z - (vae.config.shift_factor or 0.0)) * vae.config.scaling_factor

    def decode(self, latents: Tensor) -> Tensor:
        """Images ``N x C x H x W`` (nominal range [-1, 1]) of clean latents, in the latents' dtype."""
        vae = self._networks(latents.dtype)[1]
        if vae is None:
            return latents
        with torch.no_grad():
            return vae.decode(latents / vae.config.scaling_factor + (vae.config.shift_factor or 0.0)).sample


def pack(x: Tensor) -> Tensor:
    """FLUX token layout: ``[N, C, H, W]`` -> ``[N, (H/2)(W/2), 4C]`` (each 2x2 cell one token)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(n, (h // 2) * (w // 2), 4 * c)


def unpack(tokens: Tensor, shape: torch.Size) -> Tensor:
    """Inverse of :func:`pack` for a latent of ``shape`` ``[N, C, H, W]``."""
    n, c, h, w = shape
    return tokens.reshape(n, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)


def token_ids(rows: int, cols: int, like: Tensor) -> Tensor:
    """FLUX's positional ids of the image tokens, ``[rows * cols, 3]``: (0, row, column)."""
    return _token_ids(rows, cols, like.dtype, like.device)


@functools.lru_cache(maxsize=8)  # the same grid at every step of a run: build it once
def _token_ids(rows: int, cols: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack([torch.zeros_like(r), r, c], -1).reshape(-1, 3).to(device, dtype)


def _batch(value: Tensor, n: int, rank: int = 2) -> Tensor:
    """An embedding ``[tokens, width]`` / ``[width]`` (a pooled one, ``rank=1``: ``[width]``) expanded to
    batch n, or a batched one checked."""
    if value is None:
        raise ConfigError("this network needs a prompt embedding; pass prompt=NAME")
    if (value.dim() in (1, 2)) if rank == 2 else value.dim() == rank:
        return value.unsqueeze(0).expand(n, *value.shape)
    if value.shape[0] == 1 and n > 1:
        return value.expand(n, *value.shape[1:])
    return value


def load_diffusers(path: str, device: torch.device | str = "cpu", *, name: str | None = None,
                   resolution: int | None = None) -> DiffusionGenerator:
    """Load a diffusers model folder (``diffusers_io.read_folder``) as a DiffusionGenerator on ``device``.

    ``path`` may end in ``@PIXELS`` (``/models/flux@512``) to choose the image size of transformer
    models, which work at several (default: the config's ``sample_size``, FLUX 1024)."""
    from invertkit.diffusion.diffusers_io import read_folder

    head, _, tail = str(path).rpartition("@")
    if head and tail.isdigit():
        if resolution is not None:
            raise ConfigError(f"{path}: give the resolution once (@PIXELS or resolution=)")
        path, resolution = head, int(tail)
    folder = read_folder(path)
    if name is None and Path(folder.path).resolve() != Path(path).resolve():  # a hub id from the cache: keep the id
        name = str(path)
    return DiffusionGenerator(folder, name=name, resolution=resolution).to(device)
