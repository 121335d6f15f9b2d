"""The DB-VAE's losses and sampling, including the public reference code's defects 1, 2 and 5."""

import pytest
import torch

from debias.models import DBVAE, DBVAELoss, Classifier, classifier_loss, kl_divergence


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


def test_loss_terms_are_named_and_total_combines_them(model):
    x = torch.rand(6, 3, 32, 32)
    y = torch.tensor([1, 0, 1, 0, 1, 1])
    terms = DBVAELoss(beta=0.5, vae_on_all=False)(model(x), x, y)
    assert set(terms) == {"total", "classification", "reconstruction", "kl"}
    expected = terms["classification"] + terms["reconstruction"] + 0.5 * terms["kl"]
    assert torch.allclose(terms["total"], expected)


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
    # and the batch mean equals the hand-made mean over the per-sample terms
    manual = (flat["classification"] + flat["reconstruction"] + 0.1 * flat["kl"]).mean()
    assert torch.allclose(loss(out, x, y)["total"], manual)


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
    # closed form for one dimension: 0.5 * (s2 + m2 - 1 - log s2)
    m, lv = torch.tensor([[0.3]]), torch.tensor([[-0.7]])
    expected = 0.5 * (torch.exp(lv) + m**2 - 1 - lv)
    assert torch.allclose(kl_divergence(m, lv), expected.sum(1))


def test_classifier_loss_is_bce():
    logit = torch.tensor([0.0, 2.0])
    y = torch.tensor([1, 0])
    terms = classifier_loss({"logit": logit}, None, y)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logit, y.float())
    assert torch.allclose(terms["total"], expected)


def test_image_size_must_be_a_multiple_of_16():
    with pytest.raises(ValueError):
        DBVAE(latent_dim=4, image_size=40)
