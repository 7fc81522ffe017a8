"""``invertkit invert IMAGES... --generator G``: invert image files, write a run directory."""

from __future__ import annotations

import argparse
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError, ImageError
from . import invert_dataset
from .align import add_align_flags, align_file, check_align_flags
from .options import add_generator_flags, add_options_flags, check_numbers, given_options

if TYPE_CHECKING:
    from ..align import AlignedFace

DEFAULT_METHOD = "optimize"


def _method_classes() -> dict[str, type]:
    from ..methods import METHODS

    names = sorted(METHODS.names(), key=lambda m: (m != DEFAULT_METHOD, m))  # the default first
    return {name: METHODS.get(name).options for name in names}


def chosen_method(argv: Sequence[str]) -> str | None:
    """The ``--method`` / ``-m`` value in a command line (None when absent): its options are the
    ones ``invertkit invert --help`` lists."""
    for k, arg in enumerate(argv):
        if arg in ("--method", "-m") and k + 1 < len(argv):
            return argv[k + 1]
        if arg.startswith("--method="):
            return arg.split("=", 1)[1]
        if arg.startswith("-m") and len(arg) > 2 and not arg.startswith("--"):
            return arg[2:]
    return None


def method_summary(name: str) -> str:
    """The one-line summary of method ``name``."""
    from ..methods import METHODS

    return METHODS.get(name).summary


def method_list() -> str:
    """``name: summary`` for every method, one per line (the --help epilog)."""
    from ..methods import METHODS

    names = list(_method_classes())
    width = max(len(n) for n in names)
    return "\n".join(f"  {n.ljust(width)}  {METHODS.get(n).summary}" for n in names)


USAGE = "invertkit invert DATASET [DATASET ...] -g GENERATOR [-m METHOD] [--out OUT] [options]"


def add_parser(sub: argparse._SubParsersAction, argv: Sequence[str] = ()) -> None:
    """``invert``'s parser. Every method's options parse; the help lists those of the method named in
    ``argv`` (``-m NAME --help``), else only the common options and the methods, one line each."""
    classes = _method_classes()
    method = chosen_method(argv)
    shown = method if method in classes else None
    methods = (f"methods (-m METHOD --help for each one's options; default {DEFAULT_METHOD}):\n{method_list()}"
               if shown is None else f"{shown}: {method_summary(shown)}\nthe other methods: invertkit invert --help")
    p = sub.add_parser(
        "invert",
        help="invert image files into a generator; writes images, latents, metrics and report.html",
        usage=USAGE if shown is None else USAGE.replace("[-m METHOD]", f"-m {shown}").replace("[options]", f"[{shown} options]"),
        description=textwrap.fill("Invert images (files, folders, globs, lists, Parquet) into a generator and write a run "
                                  "folder (images, latents, metrics, report.html). Each method's options are flags; unset "
                                  "flags keep the method's defaults.", 79)
        + "\n\n`invertkit invert -m METHOD --help` lists METHOD's options with their defaults.",
        epilog=methods + ("\n\nexample:\n  invertkit invert photos/ -g dcgan-digiface64 -m optimize --steps 300 --out runs/faces"
                          if shown is None else ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", metavar="DATASET", help="image files, folders (recursive for the dataset layout), globs, text files of paths, or Parquet files/folders")
    add_generator_flags(p)
    p.add_argument("--method", "-m", default=DEFAULT_METHOD, metavar="METHOD",
                   help=f"the inversion method (default {DEFAULT_METHOD}; list below)")
    p.add_argument("--batch-size", type=int, default=8, help="images optimised together (default 8)")
    p.add_argument("--out", "-o", default="runs/invert", help="output folder (default runs/invert)")
    p.add_argument("--degrade", default=None, help="restoration: downsample:F, grayscale, noise:SIGMA, mask:PATH, joined by +")
    p.add_argument("--mask", default=None, help="inpainting mask image (white = known pixels)")
    p.add_argument("--simulate", action="store_true", help="the inputs are clean images: degrade them, restore, and score against the clean ones")
    p.add_argument("--metrics", default="", help="extra metrics, comma-separated (perceptual, lpips, ...; nscd: LSAP's NSCD "
                   "of the inverted latent, StyleGAN2 generators)")
    p.add_argument("--prompt-embeds", default=None, help="diffusion models: a safetensors file of named prompt embeddings to add")
    p.add_argument("--edit-prompt", default="", help="diffusion models: regenerate each inversion with these prompts too (comma-separated)")
    p.add_argument("--edit-guidance", type=float, default=None, help="diffusion models: guidance scale of the edits (default: the inversion's)")
    add_align_flags(p, paste_back=True)
    invert_dataset.add_flags(p)
    add_options_flags(p, classes, shown=shown, title=f"options of --method {shown}", listed=shown is not None)
    p.set_defaults(func=run)


def expand_inputs(items: list[str]) -> list[Path]:
    """Files as given, folders expanded to their images (sorted, not recursive: the dataset layout walks
    folders). Entries named like images that are no regular files (dangling links, link loops, FIFOs)
    are kept: reading them fails by name, so they are reported as skipped, never silently dropped."""
    from ..io.images import list_images

    out: list[Path] = []
    for item in items:
        path = Path(item)
        out.extend(list_images(path) if path.is_dir() else [path])
    return out


def check_inputs_exist(items: Sequence[str]) -> None:
    """Refuse a command line none of whose DATASET arguments exists (no file, folder, link or glob
    match): one :class:`ImageError` line naming them, raised before any folder is made. When some
    exist, the missing ones are reported as failed inputs of the run, as unreadable files are."""
    import glob

    def present(item: str) -> bool:
        if os.path.lexists(item):
            return True
        return glob.has_magic(item) and bool(glob.glob(item, recursive=True))

    missing = [item for item in items if not present(item)]
    if missing and len(missing) == len(items):
        from ..io.filenames import display_name

        names = ", ".join(display_name(m) for m in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ImageError(f"{names}: no such file, folder or glob match; check the path (DATASET is image files, "
                         "folders, globs, text files of paths or Parquet files)")


def metric_names(flag: str) -> tuple[str, ...]:
    """The names of a comma-separated ``--metrics`` value (blanks dropped)."""
    return tuple(m.strip() for m in flag.split(",") if m.strip())


def run(args: argparse.Namespace) -> int:
    from ..degradations import parse_degradation
    from ..generators import load_generator
    from ..metrics.requested import check_extra_metrics
    from ..runs.lock import RunLock
    from .run_identity import run_identity

    classes = _method_classes()
    if args.method not in classes:
        raise ConfigError(f"unknown --method {args.method!r}; choose one of: {', '.join(classes)}")

    check_inputs_exist(args.images)  # before the generator loads and before the run folder exists
    owners = {m: set(c.__dataclass_fields__) for m, c in classes.items()}
    options = given_options(args, args.method, owners, classes)
    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    check_numbers(args, finite=("edit_guidance",))
    dataset_layout = invert_dataset.wants_dataset_layout(args)
    if dataset_layout and args.align:
        raise ConfigError("--align works on image files, not the dataset layout; align them first with invertkit align")
    check_align_flags(args)
    G = load_generator(args.generator, device=args.device, weights=args.weights)
    check_extra_metrics(G, metric_names(args.metrics))  # e.g. nscd without style spaces: refused before any work
    if dataset_layout:
        if args.prompt_embeds:
            prepare_diffusion_flags(G, args.prompt_embeds, "")
        degradation = parse_degradation(args.degrade, G.resolution, args.mask)
        if args.simulate and degradation is None:
            raise ConfigError("--simulate needs --degrade or --mask")
        return invert_dataset.run(args, G, options, degradation)
    edit_prompts = prepare_diffusion_flags(G, args.prompt_embeds, args.edit_prompt)
    degradation = parse_degradation(args.degrade, G.resolution, args.mask)
    if args.simulate and degradation is None:
        raise ConfigError("--simulate needs --degrade or --mask")
    paths = expand_inputs(args.images)
    if not paths:
        raise ImageError("no images found in the given paths")
    identity = run_identity(args, G, options)
    with RunLock(args.out):  # one writer per folder, for the whole run
        return _invert_into(args, G, paths, options, identity, degradation, edit_prompts)


def _invert_into(args: argparse.Namespace, G, paths: list[Path], options: dict, identity: dict, degradation,
                 edit_prompts: list[str]) -> int:
    """Invert ``paths`` into the run folder ``args.out`` (continuing a run of the same identity there)."""
    from ..degradations import show_observation
    from ..io.filenames import display_name, distinct_names
    from ..io.images import read_image
    from ..methods import invert
    from ..progress import track
    from ..progress.terminal import terminal_reporter
    from ..runs import RunWriter
    from ..runs.interrupt import Interrupted, Interrupts
    from ..runs.writer import Restoration

    extra = metric_names(args.metrics)
    max_pixels = invert_dataset.pixel_limit(args)
    writer = RunWriter(args.out, G, title=f"invertkit invert: {len(paths)} image(s) into {G.name}", identity=identity)
    done = writer.done
    reporter = None
    with Interrupts() as stop:
        try:
            # read everything first: broken files are reported by name and skipped, the rest goes on;
            # images a previous command finished are skipped (ids stay positions in the full list: same seeds)
            size = G.resolution if (degradation is None or args.simulate) else degradation.observed_size(G.resolution)
            channels = G.channels if (degradation is None or args.simulate) else degradation.observed_channels(G.channels)
            good: list[tuple[int, str, str, torch.Tensor]] = []
            aligned: dict[str, AlignedFace] = {}  # input key -> its alignment (with --align)
            names = distinct_names(paths)  # a/x.png and b/x.png keep their folders: two rows, stems a_x and b_x
            for i, path in enumerate(paths):
                key = display_name(str(path))
                if key in done:
                    continue
                try:
                    if args.align:
                        aligned[key] = align_file(path, size, channels, face=args.face, max_pixels=max_pixels)
                        image = aligned[key].image
                    else:
                        image = read_image(path, size, channels, max_pixels=max_pixels)
                    good.append((i, display_name(names[i]), key, image))
                except ImageError as exc:
                    writer.fail(key, str(exc))
                    print(f"invertkit: skipped {display_name(str(exc))}", flush=True)
            if done:
                print(f"invertkit: continuing {args.out}: {len(writer.entries)} image(s) done before, {len(good)} to go", flush=True)

            # every step of every phase, live on a terminal, plain lines in a log (progress.terminal)
            reporter = terminal_reporter(not args.no_progress)
            done_bar = track(reporter, "images", len(good), unit="img")  # the whole command, one step per batch
            for start in range(0, len(good), args.batch_size):
                chunk = good[start : start + args.batch_size]
                if reporter is not None:
                    reporter.set_context(f"{args.method}, images {start + 1}-{start + len(chunk)} of {len(good)}")
                ids = [c[0] for c in chunk]
                images = torch.cat([c[3] for c in chunk]).to(G.device)
                reference = None
                observation = images
                if args.simulate:
                    reference = images
                    observation = degradation.observe(images, ids=ids, seed=options.get("seed", 0))
                result = invert(G, observation, args.method, degradation=degradation, image_ids=ids, reference=reference,
                                extra_metrics=extra, progress=reporter, **options)
                if edit_prompts:
                    from ..methods.diffusion import add_edits

                    add_edits(G, result, edit_prompts, guidance=args.edit_guidance)
                restoration = None
                if degradation is not None:  # the observation as the model saw it, at the generator's size
                    restoration = Restoration(show_observation(degradation.hide_unknown(observation), G.resolution, G.channels), degradation.describe(),
                                              clean_reference=reference is not None)
                shown_target = reference if reference is not None else (images if restoration is None else restoration.observed)
                with stop.critical():  # a signal now waits until the batch's files and run.json are whole
                    writer.add(result, shown_target, [c[1] for c in chunk], inputs=[c[2] for c in chunk], ids=ids,
                               restoration=restoration)
                    if aligned:
                        _write_alignment(writer, result, chunk, aligned, paste=args.paste_back)
                if reporter is not None:
                    reporter.set_context("")
                done_bar.step(n=len(chunk))
            done_bar.end()
            with stop.critical():
                out = writer.finish()
        except Interrupted as exc:
            if reporter is not None:
                reporter.close()
            writer.interrupted()
            total = len(paths) - len(writer.failures)
            exc.detail = f"after {len(writer.entries)} of {total} images; run the same command again to continue"
            raise
    now = len(writer.entries) - writer.resumed
    before = f", {writer.resumed} done before" if writer.resumed else ""
    print(f"wrote {out}/report.html, metrics.csv, metrics.json, history.csv, run.json, images/, latents/ "
          f"({now} inverted{before}, {len(writer.failures)} failed)")
    return 1 if writer.failures else 0


def _write_alignment(writer, result, chunk: list, aligned: dict, *, paste: bool) -> None:  # noqa: ANN001
    """After a batch is written: each image's transform into align.json and, with ``paste``, its
    reconstruction warped back into the photo (``images/<stem>_pasted.png``)."""
    from ..align import paste_back_face
    from ..io.images import save_image
    from .align import read_sidecar, write_sidecar

    stems = {str(e.get("input")): str(e["stem"]) for e in writer.entries if "stem" in e}
    sidecar = writer.out / "align.json"
    entries = read_sidecar(sidecar)
    for j, (_, _, key, _) in enumerate(chunk):
        if key not in stems or key not in aligned:
            continue  # diverged: no outputs to pair with
        stem = stems[key]
        entries[stem] = aligned[key].to_json()
        if paste:
            save_image(paste_back_face(aligned[key], result.reconstructions[j : j + 1])[0], writer.out / "images" / f"{stem}_pasted.png")
    write_sidecar(sidecar, entries)


def prepare_diffusion_flags(G, prompt_embeds: str | None, edit_prompt: str) -> list[str]:
    """Apply ``--prompt-embeds`` to a diffusion generator and parse ``--edit-prompt``; both are refused
    for GANs. Returns the edit prompts (the empty prompt is written ``null``)."""
    from ..diffusion.model import DiffusionModel

    prompts = [p.strip() for p in edit_prompt.split(",") if p.strip()]
    if not (prompt_embeds or prompts):
        return []
    if not isinstance(G, DiffusionModel):
        raise ConfigError(f"--prompt-embeds/--edit-prompt are for diffusion models; {G.name} is not one (use --generator diffusers:PATH)")
    if prompt_embeds:
        G.add_prompts(prompt_embeds)
    prompts = ["" if p == "null" else p for p in prompts]
    for p in prompts:
        G.cond(p)  # an unknown prompt fails now, before any work
    return prompts
