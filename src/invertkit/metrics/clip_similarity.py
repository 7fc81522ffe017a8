"""CLIP similarity of an image (or its edited region) to a prompt, as PIE-Bench reports it.

PIE-Bench uses torchmetrics' ``CLIPScore`` with ``openai/clip-vit-large-patch14``:
``100 * max(cos(E_image, E_text), 0)``, the image given as uint8 through the model's own CLIP
processor (shorter side resized to 224 bicubic, centre crop 224, CLIP mean/std), the prompt with
PIE-Bench's ``[`` ``]`` markers removed. The "edit part" score multiplies the uint8 image by the edit
mask first (``np.uint8(img * mask)``: everything outside the edited region black).

A CLIP model is optional: :func:`load_clip` reads a local ``transformers`` CLIP folder (``config.json``,
weights, tokenizer and preprocessor files, e.g. a saved ``openai/clip-vit-large-patch14``);
``transformers`` is not an invertkit dependency and is imported only there. Anything with
``image_features`` and ``text_features`` (:class:`ClipEncoder`) can score.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError, ImageError
from .edit_masks import restrict
from .protocol import finite_rows, quantize

CLIP_PROTOCOL = ("100 * max(cos(image, text), 0) (torchmetrics CLIPScore); PIE-Bench uses openai/clip-vit-large-patch14 "
                 "and its processor; edit-part: image multiplied by the edit mask (black outside) before encoding")


class ClipEncoder(Protocol):
    """What CLIP similarity needs: embeddings of uint8 images and of prompts."""

    def image_features(self, images: Tensor) -> Tensor:
        """``N x 3 x H x W`` uint8 -> ``N x E``."""
        ...

    def text_features(self, prompts: Sequence[str]) -> Tensor:
        """N prompts -> ``N x E``."""
        ...


def clean_prompt(prompt: str) -> str:
    """PIE-Bench prompt without its ``[`` ``]`` edit markers (as the official evaluation strips them)."""
    return prompt.replace("[", "").replace("]", "")


def clip_similarity(encoder: ClipEncoder, images: Tensor, prompts: Sequence[str], region: Tensor | None = None) -> Tensor:
    """CLIP score of each image in [-1, 1] (``N x 3 x H x W``) to its prompt -> ``[N]`` in [0, 100].

    ``region`` (``H x W`` / ``N x 1 x H x W`` bool): score only that region, the rest blacked out.
    Images with a non-finite pixel -> NaN."""
    if images.dim() != 4 or images.shape[1] != 3 or len(prompts) != images.shape[0]:
        raise ImageError(f"clip similarity: expected N x 3 x H x W images and N prompts, got {list(images.shape)} and {len(prompts)}")
    x = restrict(images, region) if region is not None else images
    u8 = (quantize(x).nan_to_num(0.0) * 255).round().to(torch.uint8)
    with torch.inference_mode():
        fi = encoder.image_features(u8).float()
        ft = encoder.text_features(list(prompts)).float().to(fi.device)
        cos = (fi / fi.norm(dim=-1, keepdim=True)) * (ft / ft.norm(dim=-1, keepdim=True))
        score = (100 * cos.sum(dim=-1)).clamp_min(0).cpu()
    return torch.where(finite_rows(images).cpu(), score, torch.full_like(score, float("nan")))


class TransformersClip:
    """A ``transformers`` ``CLIPModel`` + ``CLIPProcessor`` read from a local folder (no hub access)."""

    def __init__(self, model, processor, device: str | torch.device = "cpu") -> None:
        self.model = model.eval().to(device)
        self.processor = processor
        self.device = torch.device(device)

    def image_features(self, images: Tensor) -> Tensor:
        arrays = [im.permute(1, 2, 0).cpu().numpy() for im in images]
        inputs = self.processor(images=arrays, return_tensors="pt")
        return self.model.get_image_features(pixel_values=inputs["pixel_values"].to(self.device))

    def text_features(self, prompts: Sequence[str]) -> Tensor:
        inputs = self.processor(text=list(prompts), return_tensors="pt", padding=True)
        # torchmetrics' CLIPScore cuts token sequences longer than the model's positions (77) by slicing
        limit = self.model.config.text_config.max_position_embeddings
        ids, attention = inputs["input_ids"][..., :limit], inputs["attention_mask"][..., :limit]
        return self.model.get_text_features(input_ids=ids.to(self.device), attention_mask=attention.to(self.device))


def load_clip(folder: str | os.PathLike[str], device: str | torch.device = "cpu") -> TransformersClip:
    """CLIP from a local ``transformers`` folder. Raises ConfigError when ``transformers`` is not
    installed or the folder is not a CLIP model folder (one line naming it and the fix)."""
    path = Path(folder)
    if not (path / "config.json").is_file():
        raise ConfigError(f"{path}: not a CLIP model folder (no config.json); save one with "
                          "CLIPModel.from_pretrained(...).save_pretrained(DIR) and CLIPProcessor likewise")
    try:
        from transformers import CLIPModel, CLIPProcessor
    except ImportError:
        raise ConfigError(f"{path}: CLIP similarity needs the 'transformers' package, which is not installed "
                          "(pip install transformers); invertkit does not depend on it") from None
    try:
        model = CLIPModel.from_pretrained(str(path), local_files_only=True)
        processor = CLIPProcessor.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{path}: cannot load a CLIP model and processor ({str(exc).splitlines()[0][:160]})") from None
    return TransformersClip(model, processor, device)
