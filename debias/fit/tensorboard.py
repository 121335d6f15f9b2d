"""`--tensorboard DIR`: every epoch's history row as TensorBoard scalars, where torch users look at curves."""

from __future__ import annotations

import math
from pathlib import Path

from debias.errors import UserError

INSTALL_HINT = 'pip install tensorboard (or pip install -e ".[tensorboard]")'


class HistoryBoard:
    """A SummaryWriter in `log_dir` that writes each history.csv row as scalars `MODEL/COLUMN` at step = epoch.

        board = HistoryBoard("runs/x/tb")
        board.log({"model": "dbvae", "epoch": 1, "train_total": 0.71, "ess": 0.42})   # dbvae/train_total, dbvae/ess
        board.close()

    UserError when tensorboard is not installed (one message with the install command).
    """

    def __init__(self, log_dir: str | Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(f"--tensorboard needs the tensorboard package: {INSTALL_HINT}") from None
        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, row: dict) -> None:
        """Write the numeric, finite entries of one history row (model and epoch name the series and step)."""
        model, epoch = row["model"], int(row["epoch"])
        for key, value in row.items():
            if key in ("model", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(f"{model}/{key}", float(value), epoch)
        # Flushed every epoch: TensorBoard shows a running fit, and a killed one keeps its curves.
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
