"""The reports as a reader sees them: headless Chromium at 1280 px (Debian's ``chromium`` package;
skipped where it is absent). No page scrolls sideways, no table is wider than its box, every image
loads: the demo report, a bench page (two methods and the editability columns), a method's run
report inside the bench, and an inpainting report."""

from __future__ import annotations

import pytest
import torch

from invertkit.bench import run_bench
from invertkit.degradations import Mask, show_observation
from invertkit.editing.directions import Directions
from invertkit.editing.editability import EditProbe, parse_strengths
from invertkit.methods import invert
from invertkit.runs import RunWriter
from invertkit.runs.writer import Restoration

from .browser import chromium, measure_page

WIDTH = 1280


def _fits(page, images: int) -> None:
    m = measure_page(page, width=WIDTH)
    assert m.scroll_width <= WIDTH, f"{page.name}: {m.scroll_width} px wide, the reader scrolls sideways"
    assert m.overflowing_tables() == [], f"{page.name}: tables wider than their box: {m.overflowing_tables()}"
    assert m.broken == [], f"{page.name}: images that did not load: {m.broken}"
    assert m.images == images, page.name


@pytest.mark.slow  # the demo's generator, a bench and four Chromium page loads: ~20 s
def test_reports_fit_the_page_and_every_image_loads(tiny_sg2, tmp_path):
    chromium()  # skip before any work where there is no browser
    from invertkit.demo import run_demo

    demo = run_demo(tmp_path / "demo", steps=2)
    _fits(demo / "report.html", 7 * 2)

    G = tiny_sg2
    with torch.no_grad():
        x = G.synthesize(G.sample_latent(3, "w", seed=4), "w").clamp(-1, 1)
    d = Directions(torch.nn.functional.normalize(torch.randn(1, 32, generator=torch.Generator().manual_seed(0)), dim=1),
                   torch.ones(1), torch.ones(1), "w", "test")
    probe = EditProbe(d, 0, parse_strengths("-2:2", 3), lambda images: images.mean((1, 2, 3)))
    long_spec = "optimize:w+@steps=3;loss=mse=1+perceptual=1;lr=0.05"  # a long spec: the table's hardest column
    rows = run_bench(G, x, ["a.png", "b.png", "c.png"], ["optimize:w@steps=3;loss=mse=1", long_spec], tmp_path / "bench", edit=probe)
    assert {"edit_slope", "edit_change"} <= set(rows[0])
    _fits(tmp_path / "bench" / "bench.html", 1 + 2 + 2)  # targets, one grid per method, one edit strip per method
    _fits(tmp_path / "bench" / "optimize_w_steps_3_loss_mse_1" / "report.html", 3 * 2)

    op = Mask(torch.ones(1, 1, 16, 16).index_fill_(2, torch.arange(8, 16), 0.0))
    res = invert(G, op(x), "optimize", degradation=op, reference=x, steps=3, space="w", loss="mse=1")
    writer = RunWriter(tmp_path / "inpaint", G)
    writer.add(res, x, ["a.png", "b.png", "c.png"], restoration=Restoration(show_observation(op(x), 16, 3), op.describe(), True),
               groups=["real", "real", "control"])
    _fits(writer.finish() / "report.html", 3 * 4)
