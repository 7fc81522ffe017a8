"""bench.html's table: integers without decimals, long names that can wrap, and a box that scrolls
instead of widening the page."""

from __future__ import annotations

import torch

from invertkit.io.bench_report import format_number, write_bench_html


def test_numbers_print_as_a_reader_expects():
    assert format_number(200.0) == "200" and format_number(19264.0) == "19,264" and format_number(8) == "8"
    assert format_number(24.8031) == "24.803" and format_number(0.0) == "0.000"
    assert format_number(0.006878) == "0.006878" and format_number(float("nan")) == "n/a"


def test_table_wraps_and_scrolls(tmp_path):
    rows = [{"method": "optimize:w+@loss=mse=1+perceptual=1+nscd=0.5", "psnr_mean": 24.41, "evaluations_per_image": 200.0,
             "bytes_per_image": 19264.0}]
    t = torch.zeros(1, 3, 8, 8)
    page = write_bench_html(tmp_path / "bench.html", title="b", rows=rows, columns=list(rows[0]), targets=t,
                            recons={"optimize": t}).read_text()
    assert "<div class='tablebox'>" in page and "overflow-x:auto" in page
    assert "evaluations_<wbr>per_<wbr>image" in page and "loss=mse=1+<wbr>perceptual" in page
    assert ">200<" in page and ">19,264<" in page and "200.000" not in page
