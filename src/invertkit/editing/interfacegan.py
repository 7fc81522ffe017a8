"""InterFaceGAN (Shen et al., "InterFaceGAN: Interpreting the Disentangled Face Representation
Learned by GANs", TPAMI 2020): an attribute's edit direction is the unit normal of a linear SVM
boundary that separates latents of images with and without the attribute.

Labels come from a classifier run on generated images (:func:`interfacegan_from_classifier`), or
from a CSV of ``latent_id,label`` rows whose ids name seeds, rows of an array file or latent files
(:func:`labels_from_csv`, :func:`latents_for_ids`). With continuous scores, as in the paper, only the
``ratio`` highest- and lowest-scoring samples train the SVM; with binary labels all samples do.
:func:`condition` gives the paper's conditional manipulation: the normal projected away from other
attributes' normals, so moving along it leaves their (linear) scores unchanged.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, LatentSpaceError
from ..generators.base import Generator
from ..generators.capabilities import StyleSpaces
from .classifiers import Classifier, attribute_score, classify
from .directions import Directions, identity, latent_sigmas, unit_rows

SPACES = ("z", "w")
_TRUE = {"true", "yes", "y", "t"}
_FALSE = {"false", "no", "n", "f"}


def _as_targets(labels_or_scores: Tensor | Sequence[float] | Sequence[bool], n: int) -> Tensor:
    t = torch.as_tensor(labels_or_scores).detach().cpu().reshape(-1)
    if t.numel() != n:
        raise ConfigError(f"{t.numel()} labels for {n} latents; give one label or score per latent")
    if not t.dtype == torch.bool and not bool(torch.isfinite(t.double()).all()):
        raise ConfigError("labels or scores contain NaN or infinity")
    return t


def _split(idx: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle one class's indices into (train, validation), at least one of each."""
    idx = rng.permutation(idx)
    n_val = min(max(1, round(len(idx) * val_fraction)), len(idx) - 1)
    return idx[n_val:], idx[:n_val]


def boundary(latents: Tensor, labels_or_scores: Tensor | Sequence[float] | Sequence[bool], *, ratio: float = 0.1,
             C: float = 1.0, val_fraction: float = 0.3, seed: int = 0) -> tuple[Tensor, float]:
    """Fit InterFaceGAN's linear SVM boundary.

    Args:
        latents: ``[N, dim]`` (further dimensions are flattened).
        labels_or_scores: ``[N]`` bool labels (all samples used; True = has the attribute) or float
            scores (higher = more of it; the top and bottom ``ratio`` of samples become positives and
            negatives, as in the paper).
        ratio: share of samples taken on each side from scores, in (0, 0.5].
        C: the SVM's inverse regularisation strength.
        val_fraction: share of each class held out to measure accuracy, in (0, 1).
        seed: the train/validation split.
    Returns:
        ``(normal [dim] float32 on CPU, unit norm, pointing to the positive side; validation accuracy)``.
    Raises:
        ConfigError: too few samples in a class, scores that do not separate, bad options.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    x = latents.detach().cpu().double().reshape(latents.shape[0], -1).numpy()
    n = x.shape[0]
    t = _as_targets(labels_or_scores, n)
    if not 0 < val_fraction < 1:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if t.dtype == torch.bool:
        labels = t.numpy()
        pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    else:
        if not 0 < ratio <= 0.5:
            raise ConfigError(f"ratio must be in (0, 0.5] (the share of samples per side), got {ratio}")
        scores = t.double().numpy()
        order = np.argsort(-scores, kind="stable")
        k = int(n * ratio)
        pos, neg = order[:k], order[n - k:]
        if k >= 2 and scores[pos].min() <= scores[neg].max():
            raise ConfigError(f"the top and bottom {ratio:.0%} of scores overlap (many equal scores); "
                              "use binary labels or a classifier whose scores vary")
    if min(len(pos), len(neg)) < 2:
        raise ConfigError(f"InterFaceGAN needs at least 2 samples of each class, got {len(pos)} positive and "
                          f"{len(neg)} negative of {n}; label more latents (with scores: raise ratio; with a classifier: label_by='score')")
    rng = np.random.default_rng(seed)
    pos_tr, pos_va = _split(pos, val_fraction, rng)
    neg_tr, neg_va = _split(neg, val_fraction, rng)
    # A hyperplane's normal does not change under translation or a global scale. Centring keeps
    # LinearSVC's regularised intercept from tilting the normal for W latents (not centred); scaling to
    # unit variance per coordinate on average gives C the same strength in W as in Z, where it matches
    # the paper's setting (C=1 on raw z ~ N(0, I); the paper's SVC uses the hinge loss, LinearSVC the
    # squared hinge, which scales far better with the sample count).
    centre = x.mean(axis=0, keepdims=True)
    scale = float(np.sqrt(((x - centre) ** 2).mean())) or 1.0
    xs = (x - centre) / scale
    train = np.concatenate([pos_tr, neg_tr])
    y = np.concatenate([np.ones(len(pos_tr)), np.zeros(len(neg_tr))])
    svm = LinearSVC(C=C, dual="auto", max_iter=20_000, random_state=seed)
    with warnings.catch_warnings():
        # (nearly) separable data makes the solver run to max_iter; the normal has settled long before
        warnings.simplefilter("ignore", ConvergenceWarning)
        svm.fit(xs[train], y)
    val = np.concatenate([pos_va, neg_va])
    y_val = np.concatenate([np.ones(len(pos_va)), np.zeros(len(neg_va))])
    accuracy = float((svm.predict(xs[val]) == y_val).mean())
    normal = torch.from_numpy(svm.coef_.reshape(-1)).float()
    if float(normal.norm()) < 1e-12:
        raise ConfigError("the SVM found no boundary (zero normal): the labels do not depend on the latents")
    return normal / normal.norm(), accuracy


def interfacegan(G: Generator, space: str, latents: Tensor, labels_or_scores: Tensor | Sequence[float] | Sequence[bool],
                 *, ratio: float = 0.1, name: str = "attribute", C: float = 1.0, val_fraction: float = 0.3,
                 seed: int = 0, source: str = "labels") -> Directions:
    """One InterFaceGAN direction in ``space`` (``"z"`` or ``"w"``) of ``G``.

    Args:
        latents: ``[N, *G.latent_shape(space)]``.
        labels_or_scores: ``[N]`` bool labels or float scores (see :func:`boundary`).
        name: the direction's label (``"smile"``, ``"digit 3"``).
        source: where the labels came from, recorded in ``info`` (``"classifier lenet5"``, a CSV path).
    Returns:
        :class:`Directions` with one vector; ``values`` = validation accuracy; ``sigmas`` = spread of
        G's latents along the normal; ``info``: samples, ratio, accuracy, label source, SVM options.
    """
    if space not in SPACES:
        raise ConfigError(f"InterFaceGAN finds directions in {' or '.join(SPACES)}, got {space!r}")
    G.check_space(space)
    shape = tuple(G.latent_shape(space))
    if latents.dim() < 2 or tuple(latents.shape[1:]) != shape:
        raise LatentSpaceError(f"InterFaceGAN latents in {space} of {G.name} must be [N, {', '.join(map(str, shape))}], "
                               f"got {list(latents.shape)}")
    t = _as_targets(labels_or_scores, latents.shape[0])
    normal, accuracy = boundary(latents, t, ratio=ratio, C=C, val_fraction=val_fraction, seed=seed)
    vectors = unit_rows(normal.reshape(1, *shape))
    binary = t.dtype == torch.bool
    info = {"samples": int(latents.shape[0]), "ratio": None if binary else ratio, "accuracy": accuracy,
            "label_source": source, "labels": "binary" if binary else "scores", "C": C,
            "val_fraction": val_fraction, "seed": seed}
    if binary:
        info["positives"] = int(t.sum())
    return Directions(vectors, latent_sigmas(G, space, vectors), torch.tensor([accuracy]), space, "interfacegan",
                      [name], None, identity(G), info)


@torch.no_grad()
def sample_labelled(G: Generator, classifier: Classifier, *, n: int, space: str, target: int | None = None,
                    seed: int = 0, batch: int = 256) -> tuple[Tensor, Tensor]:
    """``n`` latents of ``G`` in ``space`` (``sample_latent(n, space, seed=seed)``) and the attribute
    score of each rendered image (:func:`~invertkit.editing.classifiers.attribute_score` with ``target``).

    Returns:
        ``(latents [n, *shape], scores [n])``, float32 on CPU.
    """
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    latents = G.sample_latent(n, space, seed=seed)
    scores = attribute_score(classify(G, latents, space, classifier, batch=batch), target)
    return latents.float().cpu(), scores


def interfacegan_from_classifier(G: Generator, classifier: Classifier, *, target: int | None = None,
                                 space: str | None = None, n: int = 5000, label_by: str = "decision",
                                 ratio: float = 0.1, seed: int = 0, C: float = 1.0, val_fraction: float = 0.3,
                                 batch: int = 256, name: str | None = None, source: str = "classifier") -> Directions:
    """InterFaceGAN with labels from a classifier on ``n`` generated images.

    ``label_by="decision"`` (default): every sample is labelled by the classifier's decision (class
    ``target`` or not; for a score, score > 0) and all of them train the SVM. ``label_by="score"``:
    the paper's recipe, the top and bottom ``ratio`` of the samples by score (a K-class classifier's
    log-probability of ``target``) become positives and negatives. For edits meant to change the
    decision the first works better: on the MNIST MLP GAN with LeNet-5, the share of encoder-inverted
    test digits an edit within 3 sigma turns into a 3 or an 8 is higher with decision labels (numbers
    in the README, from ``benchmarks/editing_bench.py``). ``space`` defaults to ``"w"`` where G has it, else ``"z"``.
    """
    from .classifiers import classify, predicted_class

    if space is None:
        space = "w" if isinstance(G, StyleSpaces) else "z"
    if space not in SPACES:
        raise ConfigError(f"InterFaceGAN finds directions in {' or '.join(SPACES)}, got {space!r}")
    if label_by not in ("decision", "score"):
        raise ConfigError(f"label_by must be 'decision' or 'score', got {label_by!r}")
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    latents = G.sample_latent(n, space, seed=seed)
    outputs = classify(G, latents, space, classifier, batch=batch)
    scores = attribute_score(outputs, target)  # also checks target against the classifier's outputs
    if label_by == "decision":
        decided = predicted_class(outputs)
        labels = decided.bool() if outputs.dim() == 1 or outputs.shape[1] == 1 else decided == target
    if name is None:
        name = f"class {target}" if target is not None else "attribute"
    d = interfacegan(G, space, latents.float().cpu(), labels if label_by == "decision" else scores, ratio=ratio,
                     name=name, C=C, val_fraction=val_fraction, seed=seed, source=source)
    d.info.update({"target": target, "sample_seed": seed, "label_by": label_by})
    return d


# ---- labels from files ----------------------------------------------------------------------

def _parse_label(text: str) -> float | None:
    s = text.strip().lower()
    if s in _TRUE:
        return 1.0
    if s in _FALSE:
        return 0.0
    try:
        return float(s)  # may be nan or inf: refused by the caller, not mistaken for a header
    except ValueError:
        return None


def labels_from_csv(path: str | os.PathLike[str]) -> dict[str, float]:
    """Read ``latent_id,label`` rows: ``{latent_id: label}`` in file order.

    A first row whose label is not a number is taken as a header. Labels are numbers (scores, or
    0/1) or true/false (also yes/no); blank lines and lines starting with ``#`` are skipped. Pass
    the values through :func:`labels_tensor` to get bool labels when they are all 0/1.

    Raises:
        ConfigError: a missing file, a malformed line (named by its number), a repeated id, no rows.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such labels file; give a CSV of latent_id,label rows")
    out: dict[str, float] = {}
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:  # -sig: spreadsheet exports start with a BOM
            first = True
            reader = csv.reader(f)
            for row in reader:
                lineno = reader.line_num
                if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                    continue
                fields = [c.strip() for c in row]
                value = _parse_label(fields[1]) if len(fields) == 2 else None
                if first and value is None and len(fields) == 2:
                    first = False
                    continue  # header
                first = False
                if len(fields) != 2 or not fields[0] or value is None or not math.isfinite(value):
                    raise ConfigError(f"{p}:{lineno}: expected 'latent_id,label' with a finite number or "
                                      f"true/false as label, got {','.join(row)!r}")
                if fields[0] in out:
                    raise ConfigError(f"{p}:{lineno}: latent id {fields[0]!r} appears twice")
                out[fields[0]] = value
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text CSV file") from None
    except csv.Error as exc:
        raise ConfigError(f"{p}: not a readable CSV file ({exc})") from None
    if not out:
        raise ConfigError(f"{p}: no latent_id,label rows")
    return out


def labels_tensor(values: Sequence[float]) -> Tensor:
    """Labels from :func:`labels_from_csv` values: bool ``[N]`` when all are 0 or 1, else float scores."""
    t = torch.as_tensor(list(values), dtype=torch.float32)
    return t.bool() if bool(((t == 0) | (t == 1)).all()) else t


def _row_id(i: str, count: int, where: str) -> int:
    try:
        row = int(str(i).strip())
    except ValueError:
        raise ConfigError(f"latent id {i!r} is not a row number of {where}") from None
    if not 0 <= row < count:
        raise ConfigError(f"latent id {i!r}: {where} has rows 0..{count - 1}")
    return row


def _array_rows(G: Generator, ids: Sequence[str], space: str, path: Path) -> Tensor:
    from ..io.latents import space_key

    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.ndarray):  # .npy: rows in the requested space
            arr, src = data, space
        else:
            with data:
                keys = list(data.files)
                src = str(data["space"]) if "space" in keys else space
                arrays = [k for k in keys if k != "space"]
                key = space_key(src) if space_key(src) in arrays else (arrays[0] if len(arrays) == 1 else None)
                if key is None:
                    raise ConfigError(f"{path}: holds arrays {arrays}; none is named {space_key(src)!r} for space {src!r}")
                arr = data[key]
        arr = np.asarray(arr, dtype=np.float32)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{path}: not a readable .npy/.npz latent array ({exc})") from None
    src = "z" if src == "z-sphere" else src
    G.check_space(src)
    if src == "w" and arr.ndim == 3:
        arr = arr[:, 0]  # NVIDIA's w layout [N, num_ws, w_dim]: the same w on every row
    if arr.ndim < 1 or tuple(arr.shape[1:]) != tuple(G.latent_shape(src)):
        raise ConfigError(f"{path}: rows of shape {list(arr.shape[1:])}, but {src} latents of {G.name} are "
                          f"{list(G.latent_shape(src))}")
    rows = [_row_id(i, arr.shape[0], str(path)) for i in ids]
    x = torch.from_numpy(arr[rows])
    if not bool(torch.isfinite(x).all()):
        raise ConfigError(f"{path}: the selected rows contain NaN or infinity")
    return _to_space(G, x, src, space, str(path))


def _to_space(G: Generator, x: Tensor, src: str, dst: str, where: str) -> Tensor:
    if src == dst:
        return x
    try:
        with torch.no_grad():
            return G.convert(x.to(G.device), src, dst)
    except LatentSpaceError as exc:
        raise LatentSpaceError(f"{where}: {src} latents cannot give {dst} latents ({str(exc).split(': ', 1)[-1]})") from None


def latents_for_ids(G: Generator, ids: Sequence[str | int], space: str,
                    source: str | os.PathLike[str] | None = None) -> Tensor:
    """The latents named by ``ids`` (e.g. the keys of :func:`labels_from_csv`), in ``space``.

    ``source``:
        None: each id is an integer seed, the latent ``G.sample_latent(1, space, seed=id)``.
        a ``.npy``/``.npz`` file: each id is a row number of its array (``[M, *shape]``; an ``.npz``
            with a ``space`` entry says which space its rows are in, converted to ``space``).
        a folder: each id names ``ID.npz`` (an invertkit latent file) in the folder, or in its
            ``latents/`` sub-folder for a run folder; latents are converted downstream to ``space``.
    Returns:
        ``[len(ids), *G.latent_shape(space)]`` float32 on CPU.
    Raises:
        ConfigError: an id that is no seed / row / file (named), a missing source.
        LatentSpaceError: latents that cannot be converted to ``space`` (no upstream conversions).
    """
    from ..io.latents import load_latent_file

    G.check_space(space)
    if not ids:
        raise ConfigError("no latent ids given")
    if source is None:
        out = []
        for i in ids:
            try:
                seed = int(str(i).strip())
            except ValueError:
                raise ConfigError(f"latent id {i!r} is not an integer seed; pass a source (an .npy/.npz array "
                                  "or a folder of latent files) for named latents") from None
            out.append(G.sample_latent(1, space, seed=seed).float().cpu())
        return torch.cat(out)
    src = Path(source)
    if src.is_file():
        if src.suffix.lower() not in (".npy", ".npz"):
            raise ConfigError(f"{src}: latent source must be an .npy/.npz array file or a folder of latent files")
        return _array_rows(G, [str(i) for i in ids], space, src).float().cpu()
    if not src.is_dir():
        raise ConfigError(f"{src}: no such latent file or folder")
    folder = src / "latents" if (src / "latents").is_dir() else src
    out = []
    for i in ids:
        f = folder / f"{i}.npz"
        if not f.is_file():
            raise ConfigError(f"latent id {i!r}: no file {f}; ids must name latent files NAME.npz in {folder}")
        x, lat_space = load_latent_file(f)
        lat_space = "z" if lat_space == "z-sphere" else lat_space
        if lat_space not in G.spaces:
            raise LatentSpaceError(f"{f}: a {lat_space} latent, but {G.name} has only {', '.join(G.spaces)}")
        out.append(_to_space(G, x, lat_space, space, str(f)).float().cpu())
    return torch.cat(out)


# ---- conditional manipulation -----------------------------------------------------------------

def condition(direction: Tensor, others: Tensor) -> Tensor:
    """InterFaceGAN's conditional direction: ``direction`` projected onto the orthogonal complement of
    the span of ``others`` and renormalised.

    Args:
        direction: ``[*shape]`` (any norm).
        others: ``[M, *shape]`` (or ``[*shape]`` for one) directions to keep unchanged.
    Returns:
        ``[*shape]`` unit vector orthogonal to every row of ``others``.
    Raises:
        ConfigError: ``direction`` lies (numerically) in the span of ``others``.
    """
    d = direction.detach().double().reshape(-1).cpu()
    o = others.detach().double().cpu().reshape(-1, d.numel()) if others.numel() else torch.zeros(0, d.numel())
    if o.shape[1] != d.numel():
        raise ConfigError(f"condition: others have {o.shape[1]} values per direction, the direction {d.numel()}")
    if o.shape[0]:
        q, r = torch.linalg.qr(o.T)  # orthonormal basis of the span (rank-deficient rows drop out below)
        q = q[:, r.diagonal().abs() > 1e-10 * max(1.0, float(r.diagonal().abs().max()))]
        d = d - q @ (q.T @ d)
    norm = float(d.norm())
    if norm < 1e-5 * float(direction.double().norm()):  # float32 inputs: what is left is rounding
        raise ConfigError("condition: the direction lies in the span of the conditioning directions; nothing is left")
    return (d / norm).float().reshape(direction.shape)


def conditioned(directions: Directions, index: int, on: Directions | Sequence[Directions],
                *, G: Generator | None = None) -> Directions:
    """Direction ``index`` of ``directions`` conditioned on every vector of ``on`` (see :func:`condition`).

    Args:
        on: directions in the same space (all their vectors are conditioned on).
        G: needed for W and S directions to measure the spread along the new vector (in Z it is 1).
    """
    primary = directions.select(index)
    ons = [on] if isinstance(on, Directions) else list(on)
    if not ons:
        raise ConfigError("conditioned: give at least one direction to condition on")
    for o in ons:
        if o.space != primary.space or tuple(o.vectors.shape[1:]) != tuple(primary.vectors.shape[1:]):
            raise ConfigError(f"conditioned: {o.names[0]!r} lives in {o.space} {list(o.vectors.shape[1:])}, but "
                              f"{primary.names[0]!r} in {primary.space} {list(primary.vectors.shape[1:])}")
        a, b = o.generator.get("digest"), primary.generator.get("digest")
        if a and b and a != b:
            raise ConfigError(f"conditioned: {o.names[0]!r} was found for another generator")
    others = torch.cat([o.vectors for o in ons])
    vec = condition(primary.vectors[0], others).unsqueeze(0)
    if primary.space == "z":
        sigmas = torch.ones(1)
    elif G is None:
        raise ConfigError(f"conditioned: pass G to measure the spread along a conditioned {primary.space} direction")
    else:
        sigmas = latent_sigmas(G, primary.space, vec)
    names = [n for o in ons for n in o.names]
    return Directions(vec, sigmas, primary.values.clone(), primary.space, primary.method,
                      [f"{primary.names[0]} | {', '.join(names)}"], primary.layers, dict(primary.generator),
                      {**primary.info, "conditioned_on": names})
