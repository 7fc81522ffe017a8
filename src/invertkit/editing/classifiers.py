"""Attribute classifiers for label-driven editing (InterFaceGAN, StyleSpace) and editability scores.

A classifier is any callable from images ``[N, C, H, W]`` in [-1, 1] to either

- scores ``[N]``: higher means more of the attribute (a binary logit, a regressor's output), or
- ``[N, K]`` logits or log-probabilities over K classes (a target class picks the attribute).

:func:`attribute_score` turns either into one number per image, :func:`classify` renders latents
and runs the classifier in batches, and :func:`load_classifier` builds the named classifiers that
work offline (``"lenet5"``: the pretrained MNIST digit classifier).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..generators.base import Generator

Classifier = Callable[[Tensor], Tensor]

# name -> (one-line description, builder(path or None, device))
KNOWN_CLASSIFIERS: dict[str, tuple[str, Callable[[str | None, str], Classifier]]] = {}


def _lenet5(path: str | None, device: str) -> Classifier:
    from ..features.lenet import load_lenet5

    return load_lenet5(path, device)


KNOWN_CLASSIFIERS["lenet5"] = ("LeNet-5 MNIST digit classifier, log-probabilities over 10 digits", _lenet5)


def _check_outputs(outputs: Tensor) -> Tensor:
    if not isinstance(outputs, Tensor) or outputs.dim() not in (1, 2) or outputs.shape[0] == 0:
        got = list(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
        raise ConfigError(f"a classifier must return scores [N] or logits [N, K], got {got}")
    return outputs


def attribute_score(outputs: Tensor, target: int | None = None) -> Tensor:
    """One score per image, higher = more of the attribute: ``[N]``.

    ``[N]`` scores pass through (``target`` must be None or 0); ``[N, 1]`` gives its column; ``[N, K]``
    gives ``log_softmax(outputs)[:, target]`` (the log-probability of the target class, unchanged when
    the outputs already are log-probabilities).
    """
    outputs = _check_outputs(outputs).float()
    if outputs.dim() == 1 or outputs.shape[1] == 1:
        if target not in (None, 0):
            raise ConfigError(f"target {target} given, but the classifier returns one score per image")
        return outputs.reshape(-1)
    k = outputs.shape[1]
    if target is None:
        raise ConfigError(f"the classifier returns {k} classes; choose the attribute with a target class 0..{k - 1}")
    if not 0 <= int(target) < k:
        raise ConfigError(f"target class {target} is out of range for a classifier with {k} classes (0..{k - 1})")
    return F.log_softmax(outputs, dim=1)[:, int(target)]


def predicted_class(outputs: Tensor) -> Tensor:
    """Predicted label per image, int64 ``[N]``: argmax over K classes; for scores ``[N]`` (or
    ``[N, 1]``), 1 where the score is positive, else 0."""
    outputs = _check_outputs(outputs)
    if outputs.dim() == 1 or outputs.shape[1] == 1:
        return (outputs.reshape(-1) > 0).long()
    return outputs.argmax(dim=1)


@torch.no_grad()
def classify(G: Generator, latents: Tensor, space: str, classifier: Classifier, *, batch: int = 256,
             generators: Sequence[Generator] | None = None) -> Tensor:
    """Render ``latents [N, *G.latent_shape(space)]`` and classify the images (clamped to [-1, 1]).

    Args:
        generators: one generator per latent (a PTI result's tuned generators); default ``G`` for all.
        batch: images rendered and classified per call.
    Returns:
        The classifier's outputs stacked over the batch, float32 on CPU: ``[N]`` or ``[N, K]``.
    """
    if batch < 1:
        raise ConfigError(f"batch must be at least 1, got {batch}")
    n = latents.shape[0]
    if generators is not None and len(generators) != n:
        raise ConfigError(f"classify: {len(generators)} generators for {n} latents")
    outs = []
    if generators is None:
        for start in range(0, n, batch):
            images = G.synthesize(latents[start:start + batch].to(G.device), space).clamp(-1, 1)
            outs.append(_check_outputs(classifier(images)).float().cpu())
    else:  # each latent through its own generator; classify those images together, batch at a time
        for start in range(0, n, batch):
            images = torch.cat([g.synthesize(latents[i:i + 1].to(g.device), space).clamp(-1, 1).to(G.device)
                                for i, g in zip(range(start, min(start + batch, n)), generators[start:start + batch])])
            outs.append(_check_outputs(classifier(images)).float().cpu())
    return torch.cat(outs)


def load_classifier(spec: str, device: str | torch.device = "cpu") -> Classifier:
    """A named classifier: ``"lenet5"`` (its default weight file) or ``"lenet5:PATH"`` (that file).

    Raises:
        ConfigError: unknown name (the message lists the known ones).
        CheckpointError: the weight file is missing or does not fit.
    """
    name, sep, path = str(spec).partition(":")
    name = name.strip().lower()
    if name not in KNOWN_CLASSIFIERS:
        known = "; ".join(f"{k} ({desc})" for k, (desc, _) in KNOWN_CLASSIFIERS.items())
        raise ConfigError(f"unknown classifier {spec!r}; known: {known} (optionally NAME:PATH to a weight file)")
    if sep and not path.strip():
        raise ConfigError(f"classifier {spec!r}: give a weight file after the colon, or just {name!r}")
    return KNOWN_CLASSIFIERS[name][1](path.strip() or None, str(device))
