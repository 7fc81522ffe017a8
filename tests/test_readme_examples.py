"""The README's command examples run with what ships (benchmarks/readme_examples.py): the extraction
rules, the cost cuts, and (slow) the CI subset run end to end in a temporary folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from invertkit.cli.main import build_parser

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "readme_examples.py"
README = SCRIPT.parents[1] / "README.md"


def _script():
    spec = importlib.util.spec_from_file_location("readme_examples", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_examples"] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


rx = _script()

SAMPLE = """
Text with `invertkit invert inline.png` is not an example.

```python
invertkit.invert(G, x)
```

```
$ invertkit zoo
dcgan-digiface64
  present: somewhere
$ invertkit invert a.png -g dcgan-digiface64 \\
    --steps 300 --out runs/a   # a comment
make demo
python benchmarks/export_faces.py --out runs/faces
python benchmarks/frontier_table.py --faces 16
```

<!-- readme-examples: skip (needs ffhq.pkl) -->
```bash
invertkit info ffhq.pkl
```

<!-- readme-examples: full (long) -->
```console
invertkit bench -g dcgan-digiface64 --images x --methods "optimize:z@steps=100;lr=0.1,cma:z@steps=100"
```
"""


def test_examples_are_the_shell_blocks_command_lines_with_their_markers():
    examples = rx.extract(SAMPLE)
    assert [e.words[:2] for e in examples] == [["invertkit", "zoo"], ["invertkit", "invert"],
                                                ["python", "benchmarks/export_faces.py"], ["invertkit", "info"],
                                                ["invertkit", "bench"]]
    invert = examples[1]
    assert invert.words == ["invertkit", "invert", "a.png", "-g", "dcgan-digiface64", "--steps", "300", "--out", "runs/a"]
    assert invert.line == 12 and not invert.skip and not invert.full_only
    assert examples[3].skip == "needs ffhq.pkl"
    assert examples[4].full_only and not examples[4].skip


def test_cheapen_cuts_steps_only_where_the_method_has_them():
    assert rx.cheapen(["invertkit", "invert", "a.png", "-g", "G", "--steps", "300"]) == [
        "invertkit", "invert", "a.png", "-g", "G", "--steps", "5", "--restarts", "1", "--threads", "1"]
    encoder = rx.cheapen(["invertkit", "invert", "a.png", "-g", "G", "-m", "encoder"])
    assert encoder == ["invertkit", "invert", "a.png", "-g", "G", "-m", "encoder", "--threads", "1"]  # no --steps: refused there
    pti = rx.cheapen(["invertkit", "invert", "a.png", "-g", "G", "--method", "pti"])
    assert pti[pti.index("--steps") + 1] == "5" and pti[pti.index("--pivot-steps") + 1] == "5"
    bench = rx.cheapen(rx.extract(SAMPLE)[4].words)
    assert bench[bench.index("--methods") + 1] == "optimize:z@steps=5;lr=0.1,cma:z@steps=5"
    assert bench[bench.index("--steps") + 1] == "5"


def test_every_readme_example_names_a_real_command_or_says_why_not():
    examples = rx.extract(README.read_text(encoding="utf-8"))
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert len(examples) >= 30
    for e in examples:
        if e.skip:
            continue
        if e.words[0] == "invertkit":
            assert e.words[1] in sub.choices, f"README:{e.line}: unknown command {e.words[1]}"
        else:
            assert (SCRIPT.parent / Path(e.words[1]).name).is_file(), f"README:{e.line}: no {e.words[1]}"
    # skips are the exception, each with its reason in the README: at most five skipped blocks (reasons)
    assert len({e.skip for e in examples if e.skip}) <= 5


@pytest.mark.slow
def test_the_readme_examples_run(shared_data, tmp_path):
    # the CI subset (blocks not marked "readme-examples: full"); `make readme-examples` runs them all
    lines: list[str] = []
    outcomes = rx.run_all(rx.extract(README.read_text(encoding="utf-8")), tmp_path, quick=True, log=lines.append)
    failed = [o for o in outcomes if o.status.startswith("FAIL")]
    assert not failed, "\n".join(lines)
    assert sum(o.status == "ok" for o in outcomes) >= 25
