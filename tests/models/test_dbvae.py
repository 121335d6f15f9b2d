"""The DB-VAE's losses and sampling, including the public reference code's defects 1, 2 and 5."""

import math

import pytest
import torch
from torch.distributions import Normal

from debias.models import DBVAE, Classifier, DBVAELoss, classifier_loss, kl_divergence


@pytest.fixture
def model():
    torch.manual_seed(0)
    return DBVAE(latent_dim=8, image_size=32, width=4, hidden=32)


def test_shapes(model):
    x = torch.rand(5, 3, 32, 32)
    out = model(x)
    assert out["logit"].shape == (5,)
    assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (5, 8)
    assert out["reconstruction"].shape == x.shape
    assert Classifier(image_size=32, width=4, hidden=32)(x)["logit"].shape == (5,)


def _hand_outputs():
    """Two samples whose loss terms are known by hand.

    logit 0 -> BCE ln 2 whatever the label. Sample 0 reconstructs every pixel 0.1 off (L1 0.1),
    sample 1 exactly (0). mu = (1, 0) and (2, 0) with logvar 0 -> KL 0.5 * mu^2 = 0.5 and 2.0.
    """
    x = torch.full((2, 3, 4, 4), 0.5)
    reconstruction = x.clone()
    reconstruction[0] += 0.1
    outputs = {
        "logit": torch.zeros(2),
        "mu": torch.tensor([[1.0, 0.0], [2.0, 0.0]]),
        "logvar": torch.zeros(2, 2),
        "reconstruction": reconstruction,
    }
    return outputs, x


def test_loss_terms_are_named_and_total_combines_them(model):
    x = torch.rand(6, 3, 32, 32)
    y = torch.tensor([1, 0, 1, 0, 1, 1])
    terms = DBVAELoss(beta=0.5, vae_on_all=False)(model(x), x, y)
    assert set(terms) == {"total", "classification", "reconstruction", "kl"}
    outputs, x = _hand_outputs()
    ln2 = math.log(2)
    # detection mode, y = (1, 0): the VAE terms count for sample 0 only; batch means over 2 samples
    terms = DBVAELoss(beta=0.5, vae_on_all=False)(outputs, x, torch.tensor([1, 0]))
    assert terms["classification"].item() == pytest.approx(ln2)
    assert terms["reconstruction"].item() == pytest.approx(0.1 / 2)
    assert terms["kl"].item() == pytest.approx(0.5 / 2)
    assert terms["total"].item() == pytest.approx(ln2 + 0.05 + 0.5 * 0.25)
    # attribute mode with a classification weight of 2: every sample's VAE terms count
    terms = DBVAELoss(beta=0.1, vae_on_all=True, classification_weight=2.0)(outputs, x, torch.tensor([1, 0]))
    assert terms["total"].item() == pytest.approx(2 * ln2 + 0.05 + 0.1 * 1.25)


def test_vae_terms_are_zero_for_negatives_in_detection_mode(model):
    # defect 1: the VAE loss must not apply to non-faces, the classification loss must apply to all
    x = torch.rand(4, 3, 32, 32)
    y = torch.tensor([1, 0, 0, 1])
    per = DBVAELoss(beta=1.0, vae_on_all=False).per_sample(model(x), x, y)
    assert torch.all(per["reconstruction"][y == 0] == 0) and torch.all(per["kl"][y == 0] == 0)
    assert torch.all(per["reconstruction"][y == 1] > 0) and torch.all(per["kl"][y == 1] > 0)
    assert torch.all(per["classification"] > 0)
    # a batch of negatives only gives the decoder no gradient at all
    model.zero_grad()
    neg = torch.zeros(4, dtype=torch.long)
    DBVAELoss(beta=1.0, vae_on_all=False)(model(x), x, neg)["total"].backward()
    assert all(p.grad is None or torch.all(p.grad == 0) for p in model.decoder.parameters())


def test_vae_terms_apply_to_every_sample_in_attribute_mode(model):
    x = torch.rand(4, 3, 32, 32)
    y = torch.tensor([1, 0, 0, 1])
    per = DBVAELoss(beta=1.0, vae_on_all=True).per_sample(model(x), x, y)
    assert torch.all(per["reconstruction"] > 0)


def test_column_labels_do_not_broadcast_to_batch_by_batch(model):
    # defect 2: a [B, 1] indicator times a [B] loss gave [B, B] and leaked VAE loss onto negatives
    x = torch.rand(5, 3, 32, 32)
    y = torch.tensor([1, 0, 1, 0, 0])
    torch.manual_seed(1)
    out = model(x)
    loss = DBVAELoss(beta=0.1, vae_on_all=False)
    flat = loss.per_sample(out, x, y)
    column = loss.per_sample(out, x, y.view(-1, 1))
    for name in flat:
        assert flat[name].shape == (5,)
        assert torch.equal(flat[name], column[name])
    assert torch.equal(loss(out, x, y)["total"], loss(out, x, y.view(-1, 1))["total"])
    # each batch term is the mean of its B per-sample terms, not of a [B, B] matrix
    batch = loss(out, x, y.view(-1, 1))
    for name in flat:
        assert batch[name].item() == pytest.approx(sum(flat[name].tolist()) / 5)
    # on hand-made outputs: sample 1, a negative reconstructed 0.3 off, adds nothing to
    # the VAE terms even when its label arrives as a column
    outputs, x = _hand_outputs()
    outputs["reconstruction"][1] += 0.3
    terms = loss(outputs, x, torch.tensor([[1], [0]]))
    assert terms["reconstruction"].item() == pytest.approx(0.1 / 2) and terms["kl"].item() == pytest.approx(0.5 / 2)


def test_face_detection_decodes_only_the_faces_with_the_loss_of_a_full_decode(model):
    x = torch.rand(6, 3, 32, 32)
    y = torch.tensor([1, 0, 1, 0, 0, 1])
    loss = DBVAELoss(beta=0.5, vae_on_all=False)
    kwargs = loss.forward_kwargs(y)
    assert torch.equal(kwargs["decode"], torch.tensor([0, 2, 5]))
    model.eval()  # batch norm by its running statistics: a row's reconstruction does not depend on the others
    torch.manual_seed(3)
    faces = model(x, **kwargs)
    torch.manual_seed(3)
    every = model(x)
    assert faces["reconstruction"].shape == (3, 3, 32, 32) and torch.equal(faces["z"], every["z"])
    torch.testing.assert_close(faces["reconstruction"], every["reconstruction"][[0, 2, 5]])
    full = loss.per_sample(every, x, y)
    for name, value in loss.per_sample(faces, x, y).items():
        torch.testing.assert_close(value, full[name])
    # every row is decoded when the VAE models every image, or when the batch holds no face
    assert DBVAELoss(beta=0.5, vae_on_all=True).forward_kwargs(y) == {}
    assert loss.forward_kwargs(torch.zeros(6, dtype=torch.long)) == {}


def test_reparameterization_variance_matches_the_kl_term():
    # defect 5: z = mu + exp(logvar) * eps has variance exp(2 logvar), not the exp(logvar) the KL assumes
    torch.manual_seed(0)
    mu = torch.full((200_000, 1), 0.5)
    logvar = torch.full((200_000, 1), 1.2)
    z = DBVAE.reparameterize(mu, logvar)
    assert z.mean().item() == pytest.approx(0.5, abs=0.02)
    assert z.var().item() == pytest.approx(torch.exp(torch.tensor(1.2)).item(), rel=0.02)


def test_kl_is_zero_at_the_prior_and_positive_elsewhere():
    zero = kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4))
    assert torch.all(zero == 0)
    assert torch.all(kl_divergence(torch.ones(3, 4), torch.zeros(3, 4)) > 0)
    # by hand: mu = 1, var = 1 -> 0.5 * mu^2 = 0.5; mu = 0, var = 2 -> 0.5 * (2 - 1 - ln 2); summed over dimensions
    hand = kl_divergence(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]]))
    assert hand.shape == (1,) and hand.item() == pytest.approx(0.5 + 0.5 * (1 - math.log(2.0)))
    # and torch's own Gaussian KL, per dimension, on arbitrary values
    m, lv = torch.tensor([[0.3, -1.2, 2.0]]), torch.tensor([[-0.7, 0.4, 0.0]])
    reference = torch.distributions.kl_divergence(Normal(m, torch.exp(0.5 * lv)), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(kl_divergence(m, lv), reference)


def test_classifier_loss_is_bce():
    logit = torch.tensor([0.0, 2.0])
    y = torch.tensor([1, 0])
    terms = classifier_loss({"logit": logit}, None, y)
    # -log sigmoid(0) = ln 2 for the positive, -log(1 - sigmoid(2)) = ln(1 + e^2) for the negative; the mean
    assert terms["total"].item() == pytest.approx((math.log(2) + math.log(1 + math.e**2)) / 2)
    assert terms["classification"].item() == pytest.approx(terms["total"].item())


def test_image_size_must_be_a_multiple_of_16():
    with pytest.raises(ValueError):
        DBVAE(latent_dim=4, image_size=40)
