"""Training loops, including the reference code's defects 3 (preprocessing) and 4 (eval mode left on)."""

import numpy as np
import pytest
import torch

from debias.models import DBVAE, DBVAELoss, to_model_input
from debias.train import encode_all, iterate_batches, predict_proba, train_one_epoch


def _tiny(n=24, size=32, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, size=n).astype(np.int64)
    return images, labels


def _model():
    torch.manual_seed(0)
    return DBVAE(latent_dim=6, image_size=32, width=4, hidden=16)


def test_to_model_input_scales_and_reorders_channels():
    # two lit pixels in [B, H, W, C] uint8: 51 must become 0.2 and 255 1.0, each at [b, c, h, w]
    images = np.zeros((2, 32, 32, 3), dtype=np.uint8)
    images[1, 5, 7, 2] = 51
    images[0, 30, 1, 0] = 255
    x = to_model_input(torch.from_numpy(images))
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    assert x[1, 2, 5, 7].item() == pytest.approx(0.2) and x[0, 0, 30, 1].item() == 1.0
    assert torch.count_nonzero(x) == 2  # nothing else lit, so no other axis order fits
    random_images, _ = _tiny(2)
    x = to_model_input(torch.from_numpy(random_images))
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_latents_use_the_same_preprocessing_as_training():
    # defect 3: latents were computed on raw uint8 images while training saw scaled floats
    images, labels = _tiny()
    model = _model().eval()
    mu = encode_all(model, images, batch_size=7, device=torch.device("cpu"))
    # what training feeds the model for the same rows
    x, _ = next(iterate_batches(images, labels, np.arange(len(images)), len(images), torch.device("cpu")))
    with torch.no_grad():
        _, mu_train_path, _ = model.encode(to_model_input(x))
    assert torch.allclose(mu, mu_train_path, atol=1e-5)


def test_predictions_keep_row_order_across_uneven_batches():
    # written in place batch by batch: a 24-row split in batches of 7 ends with a batch of 3
    images, _ = _tiny()
    model = _model().eval()
    probs = predict_proba(model, images, batch_size=7, device=torch.device("cpu"))
    with torch.no_grad():
        whole = torch.sigmoid(model.classify(to_model_input(torch.from_numpy(images)))).double().numpy()
    assert probs.dtype == np.float64 and probs.shape == (len(images),)
    np.testing.assert_allclose(probs, whole, atol=1e-6)
    assert predict_proba(model, images[:0], batch_size=7, device=torch.device("cpu")).shape == (0,)


def test_model_is_back_in_train_mode_after_latents_and_predictions():
    # defect 4: batch norm stayed in eval mode for the rest of training after computing latents
    images, _ = _tiny()
    model = _model().train()
    encode_all(model, images, batch_size=8, device=torch.device("cpu"))
    assert model.training and all(m.training for m in model.modules())
    predict_proba(model, images, batch_size=8, device=torch.device("cpu"))
    assert model.training
    model.eval()
    encode_all(model, images, batch_size=8, device=torch.device("cpu"))
    assert not model.training  # the previous mode is restored, whichever it was


def test_train_one_epoch_reduces_loss_and_reports_terms():
    images, labels = _tiny(64)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss = DBVAELoss(beta=0.01, vae_on_all=True)
    cpu = torch.device("cpu")
    first = train_one_epoch(model, loss, opt, iterate_batches(images, labels, np.arange(64), 16, cpu), cpu)
    for _ in range(15):
        last = train_one_epoch(model, loss, opt, iterate_batches(images, labels, np.arange(64), 16, cpu), cpu)
    assert {"total", "classification", "reconstruction", "kl", "accuracy"} <= set(first)
    assert last["total"] < first["total"]


def test_iterate_batches_visits_exactly_the_given_rows():
    # Every row is told apart by its label (its row number) and by its image (filled with the
    # row number), so a skipped, extra or wrong row changes the visited multiset.
    n = 10
    images = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 4, 4, 3)).copy()
    labels = np.arange(n, dtype=np.int64)
    idx = np.array([3, 3, 9, 0, 5])
    batches = list(iterate_batches(images, labels, idx, 2, torch.device("cpu")))
    assert [len(y) for _, y in batches] == [2, 2, 1]
    for x, y in batches:
        assert x.dtype == torch.uint8 and x.shape[1:] == (4, 4, 3)
        assert x[:, 0, 0, 0].tolist() == y.tolist()  # each image travels with its own label
        assert (x == y[:, None, None, None].to(torch.uint8)).all()
    visited = sorted(torch.cat([y for _, y in batches]).tolist())
    assert visited == [0, 3, 3, 5, 9]  # the repeated row twice, every given row, nothing else
    # consecutive batches of the given order (the order inside a batch is free)
    assert [sorted(y.tolist()) for _, y in batches] == [[3, 3], [0, 9], [5]]


@pytest.mark.parametrize(("vae_on_all", "decoded"), [(False, [8, 8]), (True, [16, 16])])
def test_training_decodes_the_rows_the_vae_terms_read(vae_on_all, decoded):
    # face detection: the non-faces' reconstructions count for nothing, so they are not decoded
    images, _ = _tiny(32)
    labels = (np.arange(32) % 2).astype(np.int64)
    model = _model()
    sizes = []
    model.decoder.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = DBVAELoss(beta=0.01, vae_on_all=vae_on_all)
    cpu = torch.device("cpu")
    terms = train_one_epoch(model, loss, opt, iterate_batches(images, labels, np.arange(32), 16, cpu), cpu)
    assert sizes == decoded and terms["reconstruction"] > 0
