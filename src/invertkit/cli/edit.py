"""``invertkit edit LATENTS -g G --direction FILE[:INDEX]``: move inverted latents along edit directions
and write one labelled strip (PNG) and GIF per latent and direction, plus ``edits.json``.

LATENTS is a latent ``.npz``, a folder of them, or an ``invertkit invert`` run folder. A PTI run's
latents are its pivots: each is edited and rendered by the image's tuned generator (its
``<name>_delta.safetensors``), as PTI edits. An fs-encoder run's latents are edited with their feature
residual re-added, moved with the edit by the residual aligner beside the run's encoder when there is
one (``--residual auto``, the default; ``aligned`` requires one, ``raw`` re-adds it unchanged). Every
strip is written as soon as it is rendered.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError, InvertkitError
from .options import add_generator_flags

_INDEX_SPEC = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def add_picture_flags(p: argparse.ArgumentParser) -> None:
    """``--gif/--no-gif``, ``--scale`` and ``--duration`` for strips and GIFs."""
    p.add_argument("--gif", action=argparse.BooleanOptionalAction, default=True, help="also write an animated GIF (default yes)")
    p.add_argument("--scale", type=int, default=None,
                   help="integer enlargement of each frame (default: small generators enlarged to at least 64 px)")
    p.add_argument("--duration", type=int, default=120, help="GIF milliseconds per frame (default 120)")


def picture_scale(args: argparse.Namespace, resolution: int) -> int:
    from ..io.strips import auto_scale

    if args.scale is None:
        return auto_scale(resolution)
    if args.scale < 1:
        raise ConfigError(f"--scale must be an integer >= 1, got {args.scale}")
    return args.scale


def parse_index_spec(text: str) -> list[int]:
    """``"0"``, ``"0,2,5"``, ``"0-4"`` (combinable) -> the indices, in order, without repeats."""
    if not _INDEX_SPEC.match(text.replace(" ", "")):
        raise ConfigError(f"direction index {text!r}: use N, N,M,... or A-B (e.g. FILE:0, FILE:0,2,5, FILE:0-4)")
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        lo, _, hi = part.partition("-")
        for i in range(int(lo), int(hi or lo) + 1):
            if i not in out:
                out.append(i)
    if not out:
        raise ConfigError(f"direction index {text!r} selects nothing (a range A-B needs A <= B)")
    return out


def parse_direction_spec(text: str) -> tuple[Path, list[int] | None]:
    """``FILE[:INDEX]`` -> (file, indices or None when no index is given). Only a suffix that reads as
    an index spec counts, so ``C:\\dirs.safetensors`` stays a path."""
    head, sep, tail = text.rpartition(":")
    if sep and head and _INDEX_SPEC.match(tail.replace(" ", "")):
        return Path(head), parse_index_spec(tail)
    return Path(text), None


def slug(text: str) -> str:
    """A file-name-safe form of a direction name (``"b16.conv0 c12"`` -> ``"b16.conv0_c12"``)."""
    from ..io.images import slug as file_slug

    return file_slug(text, "direction")


def strength_label(s: float) -> str:
    return f"{s:.1f}" if abs(s) >= 0.1 or s == 0 else f"{s:.2g}"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "edit",
        help="edit inverted latents along directions; writes a labelled strip and GIF per latent and direction",
        description="Move latents (a .npz, a folder of them, or an `invertkit invert` run folder) along edit "
        "directions found by `invertkit directions`. PTI results are edited at their pivot and rendered by "
        "their tuned generator. Writes OUT/<name>_<direction>.png (and .gif) and OUT/edits.json. "
        "Diffusion runs are edited by prompt instead: --edit-prompt P with --controller p2p|p2p-refine|none "
        "writes OUT/<name>_<controller>_<prompt>.png, edits.json and report.html.",
    )
    p.add_argument("latents", metavar="LATENT_OR_RUN_DIR", help="latent .npz file, folder of them, or run folder")
    add_generator_flags(p)
    p.add_argument("--ids", default=None, help="dataset runs (--format parquet): the rows to edit, comma-separated ids")
    p.add_argument("--direction", "-d", action="append", default=None, metavar="FILE[:INDEX]",
                   help="directions file and which of its directions: FILE:3, FILE:0,2,5 or FILE:0-4 (default index 0); repeatable")
    p.add_argument("--strength", default="-3:3", help="range A:B (with --steps frames) or values like -2,0,2 (default -3:3)")
    p.add_argument("--steps", type=int, default=7, help="frames of a strength range (default 7)")
    p.add_argument("--layers", default="default",
                   help="W+ rows a W direction changes: all, coarse, middle, fine, 0-3, 4,5 ... (default: the file's own)")
    p.add_argument("--units", default="sigma", choices=["sigma", "raw"],
                   help="strength unit: sigma (one standard deviation of the generator's latents along the direction) or raw (a unit vector)")
    p.add_argument("--residual", default="auto", choices=["auto", "aligned", "raw"],
                   help="fs-encoder results: how the feature residual follows the edit: aligned (the residual aligner "
                   "trained for the run's encoder), raw (re-added unchanged, HFGI's rule) or auto (aligned when an "
                   "aligner sits beside the encoder file, else raw; default)")
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--paste-back", action="store_true",
                   help="a run made with invert --align: also warp every frame back into its photo "
                   "(OUT/<name>_<direction>_pasted_<strength>.png, at the photo's size)")
    add_picture_flags(p)
    from .prompt_edit import add_flags

    add_flags(p)
    allow_negative_values(p)
    p.set_defaults(func=run)


def parse_ids(text: str | None) -> list[str] | None:
    """``--ids a.png,b/c.png`` -> ``["a.png", "b/c.png"]`` (None when not given)."""
    if text is None:
        return None
    ids = [i.strip() for i in text.split(",") if i.strip()]
    if not ids:
        raise ConfigError("--ids is empty; give the ids of dataset rows, comma-separated")
    return ids


def allow_negative_values(p: argparse.ArgumentParser) -> None:
    """Let ``--strength -3:3`` and ``--strength -2,0,2`` through: argparse before Python 3.13 takes
    only plain negative numbers as values, anything else starting with ``-`` as an unknown option.
    (The pattern is the one Python 3.13 uses; this parser has no option that looks like a number.)"""
    p._negative_number_matcher = re.compile(r"^-\.?\d")  # noqa: SLF001


def _rows_used(G, d, layers: str) -> list[int] | None:  # noqa: ANN001
    """The W+ rows an edit changes (None: all of its space), for edits.json."""
    from ..editing.apply import parse_layers
    from ..generators.capabilities import StyleSpaces

    if d.space != "w" or not isinstance(G, StyleSpaces):
        return None
    spec = d.layers if layers == "default" else layers
    rows = parse_layers(spec, G.num_ws)
    return None if rows is None else list(rows)


def _layer_aligner(G, item, mode: str):  # noqa: ANN001, ANN202
    """The residual aligner for a layerwise item (None: raw re-add, or not layerwise). A latent file of
    a run folder has no config of its own: the run's ``run.json`` names the encoder it came from."""
    from ..editing.apply import result_aligner

    if item.result.layer_state is None:
        return None
    if "encoder" not in (item.result.config or {}):
        run_json = Path(item.file).parent.parent / "run.json"
        try:
            cfg = json.loads(run_json.read_text(encoding="utf-8")).get("config") if run_json.is_file() else None
        except (OSError, ValueError, AttributeError):
            cfg = None
        if isinstance(cfg, dict):
            item.result.config = {**cfg, **(item.result.config or {})}
    return result_aligner(G, item.result, mode)


def run(args: argparse.Namespace) -> int:
    if args.edit_prompt is not None:  # a diffusion run: text edits with attention control
        if args.direction:
            raise ConfigError("give either --direction (latent edits) or --edit-prompt (diffusion text edits), not both")
        from .prompt_edit import run as run_prompt_edit

        return run_prompt_edit(args)
    if not args.direction:
        raise ConfigError("invertkit edit needs --direction FILE[:INDEX] (latent edits) or --edit-prompt P (diffusion runs)")
    from ..editing.apply import edit_latents, render_edits, render_layer_edits
    from ..editing.directions import load_directions
    from ..editing.editability import parse_strengths
    from ..editing.sources import item_generator, read_latents
    from ..generators import load_generator
    from ..io.strips import save_gif, save_strip

    strengths = parse_strengths(args.strength, args.steps)
    G = load_generator(args.generator, device=args.device, weights=args.weights)
    scale = picture_scale(args, G.resolution)
    if args.duration < 1:
        raise ConfigError(f"--duration must be >= 1 ms, got {args.duration}")
    items = read_latents(args.latents, G, parse_ids(args.ids), layerwise=True)
    photos = _aligned_photos(args.latents) if args.paste_back else None

    # every direction and every (latent, direction) pair is checked before anything is rendered:
    # a wrong index or space fails at once instead of after half the strips
    jobs: list[dict[str, Any]] = []
    taken: set[str] = set()
    for spec in args.direction:
        file, indices = parse_direction_spec(spec)
        d = load_directions(file, G)
        for index in indices or [0]:
            one = d.select(index)
            name = slug(one.names[0])
            key, k = name, 1
            while key in taken:  # the same direction name from two files must not overwrite
                k += 1
                key = f"{name}-{k}"
            taken.add(key)
            jobs.append({"file": file, "index": index, "directions": d, "name": one.names[0], "slug": key,
                         "rows": _rows_used(G, d, args.layers)})
    spaces: dict[tuple[str, str], str] = {}
    for item in items:
        for job in jobs:
            try:
                _, space = edit_latents(G, item.latent, item.edit_space, job["directions"], job["index"], [0.0],
                                        layers=args.layers, units=args.units)
            except InvertkitError as exc:
                raise type(exc)(f"{item.file} with {job['file']}:{job['index']}: {exc}") from None
            spaces[(item.name, job["slug"])] = space
    aligners = {id(item): _layer_aligner(G, item, args.residual) for item in items}

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    labels = [strength_label(s) for s in strengths]
    record: dict[str, Any] = {
        "source": str(args.latents),
        "generator": G.describe(),
        "strengths": list(strengths),
        "units": args.units,
        "layers": args.layers,
        "residual": args.residual,
        "latents": [{"name": it.name, "file": str(it.file), "space": it.space, "tuned": it.tuned,
                     **({"residual": "raw" if aligners[id(it)] is None else aligners[id(it)].source}
                        if it.result.layer_state is not None else {})} for it in items],
        "directions": [{"file": str(j["file"]), "index": j["index"], "name": j["name"], "space": j["directions"].space,
                        "method": j["directions"].method, "rows": j["rows"]} for j in jobs],
        "strips": [],
        "failures": {},
    }
    written = 0
    for item in items:
        try:
            Gi = item_generator(G, item)  # PTI: this image's tuned weights render its edited pivot
            for job in jobs:
                edited, space = edit_latents(G, item.latent, item.edit_space, job["directions"], job["index"], strengths,
                                             layers=args.layers, units=args.units)
                # a layerwise (fs-encoder, f:LAYER) result: the edited latent's features plus its residual
                # (moved with the edit by the aligner when there is one)
                frames = (render_layer_edits(Gi, item.result, edited, space, aligner=aligners[id(item)])
                          if item.result.layer_state is not None
                          else render_edits(Gi, edited, space))[0].cpu()
                stem = f"{item.name}_{job['slug']}"
                png = save_strip(frames, out / f"{stem}.png", labels=labels, scale=scale)
                gif = save_gif(frames, out / f"{stem}.gif", duration_ms=args.duration, scale=scale) if args.gif else None
                pasted = _paste_frames(photos, item.name, frames, out / stem, labels) if photos is not None else []
                record["strips"].append({"latent": item.name, "latent_file": str(item.file), "direction_file": str(job["file"]),
                                         "index": job["index"], "direction": job["name"], "space": space,
                                         "rows": job["rows"], "tuned": item.tuned,
                                         "png": png.name, "gif": None if gif is None else gif.name,
                                         **({"pasted": pasted} if photos is not None else {})})
                written += 1
                _write_record(out, record)
            del Gi
        except InvertkitError as exc:  # one broken delta must not cost the other images' strips
            record["failures"][str(item.file)] = str(exc)
            _write_record(out, record)
            print(f"invertkit: skipped {item.name}: {exc}", flush=True)
    _write_record(out, record)
    kinds = "PNG strips and GIFs" if args.gif else "PNG strips"
    print(f"wrote {written} {kinds} of {len(strengths)} frames and edits.json to {out}"
          + (f" ({len(record['failures'])} latent(s) failed)" if record["failures"] else ""))
    return 1 if record["failures"] else 0


def _aligned_photos(source: str) -> dict[str, dict]:
    """The alignment entries (``align.json``) of an ``invertkit invert --align`` run folder, by image stem."""
    from .align import read_sidecar

    sidecar = Path(source) / "align.json"
    entries = read_sidecar(sidecar) if Path(source).is_dir() else {}
    if not entries:
        raise ConfigError(f"--paste-back needs a run folder made with invert --align (its align.json); {source} has none")
    return entries


def _paste_frames(photos: dict[str, dict], name: str, frames, stem: Path, labels: list[str]) -> list[str]:  # noqa: ANN001
    """Each frame (``F x C x S x S``) warped back into the photo ``align.json`` names for ``name``; the files written."""
    import numpy as np

    from ..align.geometry import paste_back
    from ..errors import ImageError
    from ..io.images import read_photo, save_image

    entry = photos.get(name)
    if entry is None:
        raise ImageError(f"{name}: not in the run's align.json (inverted without --align?); no paste-back")
    photo = read_photo(entry["source"], 3)  # ImageError names the photo when it has moved
    if [photo.shape[-1], photo.shape[-2]] != list(entry["photo_size"]):
        raise ImageError(f"{entry['source']}: {photo.shape[-1]} x {photo.shape[-2]} now, {entry['photo_size']} when aligned; "
                         "the photo changed, no paste-back")
    quad = np.asarray(entry["quad"], dtype=np.float64)
    files = []
    for frame, label in zip(frames, labels):
        face = frame[None].float().expand(-1, 3, -1, -1) if frame.shape[0] == 1 else frame[None].float()
        path = stem.parent / f"{stem.name}_pasted_{label}.png"
        save_image(paste_back(photo, face, quad).clamp(-1, 1)[0], path)
        files.append(path.name)
    return files


def _write_record(out: Path, record: dict[str, Any]) -> None:
    tmp = out / "edits.json.tmp"
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / "edits.json")
