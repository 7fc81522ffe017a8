"""InterFaceGAN boundaries, conditional directions, labels from CSV files, the classifier plumbing and
the LeNet-5 digit classifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from invertkit.editing import edit_latents
from invertkit.editing.classifiers import (
    attribute_score,
    classify,
    load_classifier,
    predicted_class,
)
from invertkit.editing.directions import Directions, latent_sigmas, unit_rows
from invertkit.editing.interfacegan import (
    boundary,
    condition,
    conditioned,
    interfacegan,
    interfacegan_from_classifier,
    labels_from_csv,
    labels_tensor,
    latents_for_ids,
    sample_labelled,
)
from invertkit.errors import CheckpointError, ConfigError, ImageError, LatentSpaceError
from invertkit.features import lenet
from invertkit.generators import wrap
from invertkit.io.latents import save_latent_file


def _unit(dim: int, seed: int) -> torch.Tensor:
    v = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    return v / v.norm()


# ---- boundary --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["labels", "scores"])
def test_boundary_recovers_the_true_normal(kind):
    n_true = _unit(16, 1)
    z = torch.randn(3000, 16, generator=torch.Generator().manual_seed(2))
    proj = z @ n_true
    target = proj > 0 if kind == "labels" else proj
    normal, acc = boundary(z, target, ratio=0.1, seed=0)
    assert normal.shape == (16,) and abs(float(normal.norm()) - 1) < 1e-5
    assert float(normal @ n_true) > 0.95  # points to the positive side, not just parallel
    assert acc > 0.9


def test_boundary_in_shifted_space_is_not_tilted_by_the_offset():
    # W latents are not centred: the normal must not depend on where the cloud sits
    n_true = _unit(8, 3)
    x = torch.randn(2000, 8, generator=torch.Generator().manual_seed(4)) * 0.1 + 5.0
    normal, _ = boundary(x, (x - 5.0) @ n_true > 0)
    assert float(normal @ n_true) > 0.95


def test_boundary_refuses_degenerate_labels():
    z = torch.randn(50, 4)
    labels = torch.zeros(50, dtype=torch.bool)
    labels[0] = True
    with pytest.raises(ConfigError, match="at least 2 samples of each class"):
        boundary(z, labels)
    with pytest.raises(ConfigError, match="overlap"):
        boundary(z, torch.zeros(50))
    with pytest.raises(ConfigError, match="labels for 50 latents"):
        boundary(z, torch.zeros(49))
    with pytest.raises(ConfigError, match="ratio"):
        boundary(z, torch.randn(50), ratio=0.7)


# ---- from images: a generator whose pixel (0, 0) encodes n_true . z ------------------------------

class _PixelCode(nn.Module):
    def __init__(self, n_true: torch.Tensor) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.register_buffer("A", torch.randn(8, 64, generator=g) * 0.3)
        self.register_buffer("n", n_true.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = torch.tanh(z @ self.A)
        return torch.cat([torch.tanh(0.5 * (z @ self.n))[:, None], out[:, 1:]], dim=1)


def _pixel_generator(n_true):
    return wrap(_PixelCode(n_true), (8,), 8, 1, name="pixel-code")


def test_interfacegan_from_a_score_classifier():
    n_true = _unit(8, 6)
    G = _pixel_generator(n_true)
    d = interfacegan_from_classifier(G, lambda im: im[:, 0, 0, 0], n=1500, ratio=0.2, label_by="score", name="bright corner")
    assert isinstance(d, Directions) and d.space == "z" and d.method == "interfacegan"
    assert float(d.vectors[0] @ n_true) > 0.95
    assert d.names == ["bright corner"] and float(d.sigmas[0]) == 1.0
    assert d.values[0] == d.info["accuracy"] > 0.9
    assert d.info["samples"] == 1500 and d.info["ratio"] == 0.2 and d.info["label_source"] == "classifier"
    # labelled by the decision (score > 0), every sample trains the SVM: the same direction
    by_decision = interfacegan_from_classifier(G, lambda im: im[:, 0, 0, 0], n=1500)
    assert by_decision.info["label_by"] == "decision" and by_decision.info["positives"] > 300
    assert float(by_decision.vectors[0] @ n_true) > 0.95
    with pytest.raises(ConfigError, match="label_by"):
        interfacegan_from_classifier(G, lambda im: im[:, 0, 0, 0], n=10, label_by="vote")


def test_interfacegan_from_a_k_class_classifier_uses_the_target_log_probability():
    n_true = _unit(8, 7)
    G = _pixel_generator(n_true)

    def two_class(images):  # class 1 = bright corner, class 0 = dark corner
        p = images[:, 0, 0, 0] * 4
        return torch.stack([-p, p], dim=1)

    d1 = interfacegan_from_classifier(G, two_class, target=1, n=1000, ratio=0.2, label_by="score")
    d0 = interfacegan_from_classifier(G, two_class, target=0, n=1000)  # by decision
    assert float(d1.vectors[0] @ n_true) > 0.95
    assert float(d0.vectors[0] @ n_true) < -0.95
    assert d1.names == ["class 1"] and d1.info["target"] == 1
    with pytest.raises(ConfigError, match="target class"):
        interfacegan_from_classifier(G, two_class, n=100)


def test_sample_labelled_matches_seeded_samples(tiny_mlp):
    lat, scores = sample_labelled(tiny_mlp, lambda im: im.mean(dim=(1, 2, 3)), n=10, space="z", seed=3, batch=4)
    assert torch.equal(lat, tiny_mlp.sample_latent(10, "z", seed=3).cpu())
    assert torch.allclose(scores, tiny_mlp.synthesize(lat, "z").clamp(-1, 1).mean(dim=(1, 2, 3)), atol=1e-6)


def test_interfacegan_in_w_of_stylegan(tiny_sg2):
    n_true = _unit(32, 8)
    w = tiny_sg2.sample_latent(3000, "w", seed=1)
    d = interfacegan(tiny_sg2, "w", w, (w - w.mean(0)) @ n_true, ratio=0.2, name="synthetic")
    assert float(d.vectors[0] @ n_true) > 0.95
    assert torch.equal(d.sigmas, latent_sigmas(tiny_sg2, "w", d.vectors)) and float(d.sigmas[0]) != 1.0  # in W units
    with pytest.raises(ConfigError, match="z or w"):
        interfacegan(tiny_sg2, "s", tiny_sg2.sample_latent(10, "s"), torch.randn(10))
    with pytest.raises(LatentSpaceError, match="must be"):
        interfacegan(tiny_sg2, "w", torch.randn(10, 31), torch.randn(10))


# ---- conditional manipulation ------------------------------------------------------------------

def test_condition_is_orthogonal_and_unit():
    d = torch.randn(12)
    others = torch.randn(3, 12)
    c = condition(d, others)
    assert abs(float(c.norm()) - 1) < 1e-5
    assert float((others @ c).abs().max()) < 1e-5
    assert float(c @ d) > 0  # still the same attribute, only its component along the others removed
    with pytest.raises(ConfigError, match="span"):
        condition(others[0] * 2 + others[1], others)


def _dirs(vec: torch.Tensor, name: str) -> Directions:
    return Directions(unit_rows(vec[None]), torch.ones(1), torch.ones(1), "z", "interfacegan", [name])


def test_conditioned_edit_keeps_the_other_attribute(tiny_mlp):
    n1 = _unit(8, 10)
    n2 = 0.6 * n1 + 0.8 * _unit(8, 11)  # correlated attributes: a plain edit of a1 changes a2
    n2 = n2 / n2.norm()
    d1, d2 = _dirs(n1, "a1"), _dirs(n2, "a2")
    z = tiny_mlp.sample_latent(5, "z", seed=0)
    plain, _ = edit_latents(tiny_mlp, z, "z", d1, 0, [3.0])
    cond = conditioned(d1, 0, d2)
    edited, _ = edit_latents(tiny_mlp, z, "z", cond, 0, [3.0])
    delta1 = (edited[:, 0] - z) @ n1
    delta2 = (edited[:, 0] - z) @ n2
    assert float(((plain[:, 0] - z) @ n2).abs().min()) > 1.0  # the test can fail: correlation is real
    assert float(delta2.abs().max()) < 1e-4
    assert float(delta1.min()) > 1.5
    assert cond.names == ["a1 | a2"] and cond.info["conditioned_on"] == ["a2"]


def test_conditioned_with_found_directions_in_w_needs_g(tiny_sg2):
    w = tiny_sg2.sample_latent(800, "w", seed=2)
    n1, n2 = _unit(32, 12), _unit(32, 13)
    a = interfacegan(tiny_sg2, "w", w, w @ n1, ratio=0.2, name="a")
    b = interfacegan(tiny_sg2, "w", w, w @ n2, ratio=0.2, name="b")
    with pytest.raises(ConfigError, match="pass G"):
        conditioned(a, 0, b)
    c = conditioned(a, 0, [b], G=tiny_sg2)
    assert abs(float(c.vectors[0] @ b.vectors[0])) < 1e-5 and float(c.sigmas[0]) > 0


# ---- labels from CSV and latent ids -------------------------------------------------------------

def test_labels_from_csv_with_and_without_header(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text("latent_id,label\n3,true\n7,false\n\n# a comment\n11,1\n")
    assert labels_from_csv(a) == {"3": 1.0, "7": 0.0, "11": 1.0}
    b = tmp_path / "b.csv"
    b.write_text("img_001, 0.25\nimg_002,-1.5e0\n")
    assert labels_from_csv(b) == {"img_001": 0.25, "img_002": -1.5}
    assert labels_tensor(labels_from_csv(a).values()).dtype == torch.bool
    assert labels_tensor(labels_from_csv(b).values()).dtype == torch.float32


@pytest.mark.parametrize("text, where", [
    ("latent_id,label\n1,1\n2,maybe\n", ":3:"),
    ("1,1\n2\n", ":2:"),
    ("1,1\n2,0,5\n", ":2:"),
    ("1,1\n1,0\n", ":2: latent id '1' appears twice"),
    ("1,nan\n", ":1:"),
])
def test_labels_from_csv_names_the_bad_line(tmp_path, text, where):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ConfigError, match=f"bad.csv{where}"):
        labels_from_csv(p)


def test_labels_from_csv_missing_or_empty(tmp_path):
    with pytest.raises(ConfigError, match="no such labels file"):
        labels_from_csv(tmp_path / "none.csv")
    (tmp_path / "e.csv").write_text("latent_id,label\n")
    with pytest.raises(ConfigError, match="no latent_id,label rows"):
        labels_from_csv(tmp_path / "e.csv")


def test_ids_as_seeds(tiny_sg2):
    lat = latents_for_ids(tiny_sg2, ["4", 9], "w")
    assert torch.equal(lat[0], tiny_sg2.sample_latent(1, "w", seed=4)[0].cpu())
    assert torch.equal(lat[1], tiny_sg2.sample_latent(1, "w", seed=9)[0].cpu())
    with pytest.raises(ConfigError, match="'face_3' is not an integer seed"):
        latents_for_ids(tiny_sg2, ["face_3"], "w")


def test_ids_as_array_rows(tiny_sg2, tmp_path):
    z = tiny_sg2.sample_latent(5, "z", seed=1).cpu().numpy()
    np.save(tmp_path / "z.npy", z)
    assert torch.equal(latents_for_ids(tiny_sg2, ["4", "0"], "z", tmp_path / "z.npy"), torch.from_numpy(z[[4, 0]]))
    np.savez(tmp_path / "zs.npz", z=z, space=np.asarray("z"))  # rows in z, asked in w: mapped downstream
    got = latents_for_ids(tiny_sg2, ["2"], "w", tmp_path / "zs.npz")
    assert torch.allclose(got, tiny_sg2.convert(torch.from_numpy(z[[2]]), "z", "w").cpu(), atol=1e-6)
    with pytest.raises(ConfigError, match="latent id '5'.*rows 0..4"):
        latents_for_ids(tiny_sg2, ["5"], "z", tmp_path / "z.npy")
    with pytest.raises(ConfigError, match="rows of shape"):
        latents_for_ids(tiny_sg2, ["0"], "s", tmp_path / "z.npy")  # .npy rows are taken in the asked space


def test_ids_as_latent_files_in_a_run_folder(tiny_sg2, tmp_path):
    w = tiny_sg2.sample_latent(2, "w", seed=3).cpu().numpy()
    for name, row in (("cat", w[0:1]), ("dog", w[1:2])):
        save_latent_file(tmp_path / "run" / "latents" / f"{name}.npz", {"w": row}, "w")
    got = latents_for_ids(tiny_sg2, ["dog", "cat"], "s", tmp_path / "run")
    want = tiny_sg2.convert(torch.from_numpy(w[[1, 0]]), "w", "s").cpu()
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ConfigError, match="latent id 'cow'.*cow.npz"):
        latents_for_ids(tiny_sg2, ["cow"], "w", tmp_path / "run")
    with pytest.raises(LatentSpaceError, match="dog.npz"):
        latents_for_ids(tiny_sg2, ["dog"], "z", tmp_path / "run")  # no way back from w to z


def test_csv_seed_labels_end_to_end(tiny_mlp, tmp_path):
    n_true = _unit(8, 14)
    rows = ["latent_id,label"]
    for seed in range(400):
        z = tiny_mlp.sample_latent(1, "z", seed=seed)[0]
        rows.append(f"{seed},{'true' if float(z @ n_true) > 0 else 'false'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    labels = labels_from_csv(tmp_path / "labels.csv")
    lat = latents_for_ids(tiny_mlp, list(labels), "z")
    d = interfacegan(tiny_mlp, "z", lat, labels_tensor(labels.values()), source="labels.csv")
    assert float(d.vectors[0] @ n_true) > 0.9
    assert d.info["labels"] == "binary" and d.info["label_source"] == "labels.csv"


# ---- classifier plumbing -----------------------------------------------------------------------

def test_attribute_score_and_predicted_class():
    scores = torch.tensor([0.5, -1.0])
    assert torch.equal(attribute_score(scores), scores)
    assert torch.equal(predicted_class(scores), torch.tensor([1, 0]))
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    assert torch.allclose(attribute_score(logits, 2), F.log_softmax(logits, 1)[:, 2])
    assert torch.allclose(attribute_score(F.log_softmax(logits, 1), 2), F.log_softmax(logits, 1)[:, 2])
    assert torch.equal(predicted_class(logits), torch.tensor([0, 1]))
    assert torch.equal(attribute_score(logits[:, :1]), logits[:, 0])
    with pytest.raises(ConfigError, match="target class"):
        attribute_score(logits)
    with pytest.raises(ConfigError, match="out of range"):
        attribute_score(logits, 3)
    with pytest.raises(ConfigError, match="one score per image"):
        attribute_score(scores, 1)


def test_classify_batches_and_per_latent_generators(tiny_mlp):
    z = tiny_mlp.sample_latent(7, "z", seed=0)
    clf = lambda im: im.flatten(1)[:, :3]  # noqa: E731
    whole = classify(tiny_mlp, z, "z", clf, batch=100)
    assert whole.shape == (7, 3)
    assert torch.allclose(classify(tiny_mlp, z, "z", clf, batch=3), whole, atol=1e-6)  # GEMM rounding differs by batch
    assert torch.allclose(classify(tiny_mlp, z, "z", clf, batch=2, generators=[tiny_mlp] * 7), whole, atol=1e-6)
    assert float(whole.abs().max()) <= 1
    with pytest.raises(ConfigError, match="2 generators for 7"):
        classify(tiny_mlp, z, "z", clf, generators=[tiny_mlp] * 2)


def test_load_classifier_names(tmp_path):
    with pytest.raises(ConfigError, match="unknown classifier 'resnet'.*lenet5"):
        load_classifier("resnet")
    path = _random_lenet_file(tmp_path)
    clf = load_classifier(f"lenet5:{path}")
    assert clf(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


# ---- LeNet-5 -----------------------------------------------------------------------------------

def _random_lenet_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = {"convnet.c1.weight": (6, 1, 5, 5), "convnet.c1.bias": (6,), "convnet.c3.weight": (16, 6, 5, 5),
              "convnet.c3.bias": (16,), "convnet.c5.weight": (120, 16, 5, 5), "convnet.c5.bias": (120,),
              "fc.f6.weight": (84, 120), "fc.f6.bias": (84,), "fc.f7.weight": (10, 84), "fc.f7.bias": (10,)}
    return {k: torch.randn(s, generator=g) * 0.2 for k, s in shapes.items()}


def _random_lenet_file(tmp_path, name="lenet5.pth", state=None):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state if state is not None else _random_lenet_state(), p)
    return p


def test_lenet5_matches_the_layer_list(tmp_path):
    state = _random_lenet_state(1)
    net = lenet.load_lenet5(_random_lenet_file(tmp_path, state=state))
    images = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    x = F.interpolate((images + 1) / 2, size=(32, 32), mode="bilinear", align_corners=False)
    x = F.max_pool2d(F.relu(F.conv2d(x, state["convnet.c1.weight"], state["convnet.c1.bias"])), 2)
    x = F.max_pool2d(F.relu(F.conv2d(x, state["convnet.c3.weight"], state["convnet.c3.bias"])), 2)
    x = F.relu(F.conv2d(x, state["convnet.c5.weight"], state["convnet.c5.bias"])).flatten(1)
    x = F.linear(F.relu(F.linear(x, state["fc.f6.weight"], state["fc.f6.bias"])), state["fc.f7.weight"], state["fc.f7.bias"])
    want = F.log_softmax(x, dim=1)
    got = net(images)
    assert got.shape == (3, 10) and torch.allclose(got, want, atol=1e-5)
    assert not any(p.requires_grad for p in net.parameters()) and not net.training
    assert net(torch.zeros(1, 1, 32, 32)).shape == (1, 10)  # native size: no resize
    with pytest.raises(ImageError, match="greyscale"):
        net(torch.zeros(1, 3, 28, 28))


def test_lenet5_bad_files_name_the_file(tmp_path):
    state = _random_lenet_state()
    renamed = {k.replace("fc.f7", "fc.out"): v for k, v in state.items()}
    p = _random_lenet_file(tmp_path, "renamed.pth", renamed)
    with pytest.raises(CheckpointError, match="renamed.pth.*missing fc.f7"):
        lenet.load_lenet5(p)
    wrong = dict(state, **{"fc.f7.weight": torch.zeros(2, 84), "fc.f7.bias": torch.zeros(2)})
    with pytest.raises(CheckpointError, match="wrong.pth.*wrong shape"):
        lenet.load_lenet5(_random_lenet_file(tmp_path, "wrong.pth", wrong))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        lenet.load_lenet5(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="nan.pth.*NaN"):
        lenet.load_lenet5(_random_lenet_file(tmp_path, "nan.pth", dict(state, **{"fc.f6.bias": torch.full((84,), float("nan"))})))
    with pytest.raises(CheckpointError, match="absent.pth"):
        lenet.load_lenet5(tmp_path / "absent.pth")


def test_lenet5_default_file_lookup(tmp_path, monkeypatch):
    monkeypatch.setattr(lenet, "lenet5_candidates", lambda: [tmp_path / "nowhere" / "lenet5.pth"])
    with pytest.raises(CheckpointError, match="not found.*nowhere.*lenet5:PATH"):
        lenet.load_lenet5()
    monkeypatch.undo()
    monkeypatch.setenv("INVERTKIT_HOME", str(tmp_path / "home"))
    state = _random_lenet_state(3)
    _random_lenet_file(tmp_path / "home" / "classifiers", state=state)
    assert lenet.lenet5_candidates()[0] == tmp_path / "home" / "classifiers" / "lenet5.pth"
    assert torch.equal(lenet.load_lenet5().net.fc.f7.weight, state["fc.f7.weight"])  # the cache comes first


@pytest.mark.slow
def test_pretrained_lenet5_classifies_mnist(shared_data):
    path = shared_data / "mnist_lenet5" / "lenet5.pth"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    from invertkit.io.samples import mnist_test

    images, labels = mnist_test(shared_data / "mnist", 200)
    clf = load_classifier(f"lenet5:{path}")
    accuracy = float((predicted_class(clf(images)) == labels).float().mean())
    assert accuracy > 0.95


@pytest.mark.slow
def test_digit_direction_on_the_pretrained_mnist_gan(shared_data):
    from invertkit.generators.zoo import ZOO

    gen_file = shared_data / "mnist_mlp_gan" / "generator.ckpt"
    clf_file = shared_data / "mnist_lenet5" / "lenet5.pth"
    if not (gen_file.is_file() and clf_file.is_file()):
        pytest.skip("the MNIST GAN or LeNet-5 weights are absent")
    G = ZOO.get("mnist-mlp-gan").load(gen_file)
    clf = load_classifier(f"lenet5:{clf_file}")
    d = interfacegan_from_classifier(G, clf, target=3, n=2000, ratio=0.1)
    assert d.space == "z" and d.values[0] > 0.7
    z = G.sample_latent(200, "z", seed=99)
    edited, _ = edit_latents(G, z, "z", d, 0, [0.0, 3.0])
    threes = (predicted_class(classify(G, edited.reshape(400, -1), "z", clf)).reshape(200, 2) == 3).float().mean(0)
    assert float(threes[1]) > float(threes[0]) + 0.3  # 3 sigmas along the normal turn many digits into 3s


@pytest.mark.slow
def test_digit_edit_flips_most_inverted_test_digits_and_the_bench_shows_it(shared_data, tmp_path):
    """The issue's bar: an InterFaceGAN direction for a digit class turns at least 80% of inverted
    MNIST test digits into that class (LeNet-5's decision) at some strength within -3..3 sigma."""
    from invertkit.bench import run_bench
    from invertkit.editing import EditProbe, editability, parse_strengths, save_directions
    from invertkit.generators import load_generator
    from invertkit.io.samples import mnist_test
    from invertkit.methods import invert

    gen_file = shared_data / "mnist_mlp_gan" / "generator.ckpt"
    clf_file = shared_data / "mnist_lenet5" / "lenet5.pth"
    if not (gen_file.is_file() and clf_file.is_file()):
        pytest.skip("the MNIST GAN or LeNet-5 weights are absent")
    G = load_generator("mnist-mlp-gan", weights=gen_file)
    clf = load_classifier(f"lenet5:{clf_file}")
    digits, labels = mnist_test(shared_data / "mnist", 200)
    d = interfacegan_from_classifier(G, clf, target=1, n=5000)
    res = invert(G, digits, "encoder")  # the shipped encoder: one pass
    out = editability(G, res.latents, res.space, EditProbe(d, 0, parse_strengths("-3:3", 7), clf, 1))
    assert out["edit_flip"] >= 0.8 and out["edit_slope"] > 0, out
    # the opposite edit takes most 1s away from 1: the direction means "one-ness", not just change
    ones = res.latents[labels == 1]
    edited, _ = edit_latents(G, ones, "z", d, 0, [-3.0])
    still = predicted_class(classify(G, edited[:, 0], "z", clf)) == 1
    assert float(still.float().mean()) < 0.5
    path = save_directions(d, tmp_path / "one.safetensors")
    from invertkit.editing import load_directions

    probe = EditProbe(load_directions(path, G), 0, parse_strengths("-3:3", 7), clf, 1)
    rows = run_bench(G, digits[:40], [f"d{i}" for i in range(40)], ["encoder"], tmp_path / "bench", batch_size=40, edit=probe)
    assert rows[0]["edit_flip"] >= 0.8
    assert "Edits of the first image" in (tmp_path / "bench" / "bench.html").read_text()
