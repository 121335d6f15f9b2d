"""DB-VAE, the plain classifier baseline, and their losses."""

from debias.models.inputs import to_model_input
from debias.models.losses import DBVAELoss, classifier_loss, kl_divergence, reconstruction_error
from debias.models.networks import DBVAE, DOWNSAMPLING, Classifier, Decoder, EncoderTrunk

__all__ = [
    "DBVAE",
    "DBVAELoss",
    "Classifier",
    "Decoder",
    "DOWNSAMPLING",
    "EncoderTrunk",
    "classifier_loss",
    "kl_divergence",
    "reconstruction_error",
    "to_model_input",
]
