"""The multi-task user model: a shared tower to a user embedding, and one head per prediction."""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from jobs.model.inputs import InputSpec

SPEND_TIERS = ("none", "low", "mid", "high")


@dataclass(frozen=True)
class NetworkShape:
    n_behaviour: int
    text_dim: int           # one text vector's width
    n_categories: int
    embedding_dim: int = 64
    hidden_dim: int = 256
    n_text_vectors: int = 1  # how many text vectors the text input concatenates
    image_dim: int = 0       # the photo vector's width in the interest input (0: no photos)

    @property
    def text_width(self) -> int:
        return self.n_text_vectors * self.text_dim

    @property
    def interest_width(self) -> int:
        """interest_vector, then image_interest_vector when the model sees photos."""
        return self.text_dim + self.image_dim


class UserModel(nn.Module):
    """(behaviour, text, interest: titles and photos) -> (embedding, propensity logit, churn logit, category logits, spend-tier logits).

    Behaviour is standardised inside the model (buffers set from the training rows), so a saved
    model takes the same raw inputs that ``jobs.model.inputs.model_inputs`` produces.
    The heads are linear in the embedding, which keeps the embedding's geometry meaningful for
    segments and lookalikes.
    """

    def __init__(self, shape: NetworkShape):
        super().__init__()
        self.shape = shape
        self.register_buffer("mean", torch.zeros(shape.n_behaviour))
        self.register_buffer("std", torch.ones(shape.n_behaviour))
        width = shape.n_behaviour + shape.text_width + shape.interest_width
        self.tower = nn.Sequential(nn.Linear(width, shape.hidden_dim), nn.ReLU(),
                                   nn.Linear(shape.hidden_dim, shape.hidden_dim), nn.ReLU(),
                                   nn.Linear(shape.hidden_dim, shape.embedding_dim))
        self.propensity = nn.Linear(shape.embedding_dim, 1)
        self.churn = nn.Linear(shape.embedding_dim, 1)
        self.category = nn.Linear(shape.embedding_dim, max(shape.n_categories, 1))
        self.spend = nn.Linear(shape.embedding_dim, len(SPEND_TIERS))

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def forward(self, behaviour: torch.Tensor, text: torch.Tensor, interest: torch.Tensor):
        x = torch.cat([(behaviour - self.mean) / self.std, text, interest], dim=1)
        return self._outputs(self.tower(x))

    def held_inputs(self, text: torch.Tensor, interest: torch.Tensor) -> torch.Tensor:
        """The first layer's pre-activation from ``text`` and ``interest`` alone, its bias included: what
        ``from_behaviour`` adds to the behaviour's part."""
        first = self.tower[0]
        return torch.cat([text, interest], dim=1) @ first.weight[:, self.shape.n_behaviour:].T + first.bias

    def from_behaviour(self, behaviour: torch.Tensor, held: torch.Tensor):
        """``forward`` with the text and interest inputs' part of the first layer given (``held_inputs``): an
        integrated-gradients path moves the behaviour alone, and the held inputs are 1,152 of the layer's
        columns, computed once per user instead of once per step of the path."""
        first = self.tower[0]
        x = ((behaviour - self.mean) / self.std) @ first.weight[:, :self.shape.n_behaviour].T + held
        return self._outputs(self.tower[1:](x))

    def _outputs(self, embedding: torch.Tensor):
        return (embedding, self.propensity(embedding).squeeze(1), self.churn(embedding).squeeze(1),
                self.category(embedding), self.spend(embedding))


def multitask_loss(outputs, bought: torch.Tensor, churned: torch.Tensor, categories: torch.Tensor,
                   tier: torch.Tensor) -> torch.Tensor:
    """Sum of the four task losses (the category loss averages over the vocabulary's classes)."""
    _, propensity, churn, category, spend = outputs
    loss = F.binary_cross_entropy_with_logits(propensity, bought) + F.binary_cross_entropy_with_logits(churn, churned)
    if categories.shape[1]:
        loss = loss + F.binary_cross_entropy_with_logits(category, categories)
    else:  # a source without categories: the head's placeholder output stays in the graph, as DDP requires
        loss = loss + 0.0 * category.sum()
    return loss + 0.5 * F.cross_entropy(spend, tier)


@dataclass(frozen=True)
class ModelBundle:
    """Everything the scoring stage needs: the network's shape, weights and the input spec's vocabulary, and
    the published scorer of each binary target (the network's own head where none is named)."""

    shape: NetworkShape
    state: dict
    spec: InputSpec
    run_id: str
    scorers: dict = field(default_factory=dict)  # target -> jobs.model.challengers.Scorer

    @property
    def categories(self) -> tuple[str, ...]:
        return self.spec.categories

    def network(self) -> UserModel:
        model = UserModel(self.shape)
        model.load_state_dict(self.state)
        return model.eval()

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        # Scorer parameters travel as byte tensors: the weights-only loader accepts tensors and plain values.
        scorers = {t: {"method": s.method, "params": torch.frombuffer(bytearray(s.params or b"\0"), dtype=torch.uint8),
                       "calibration": list(s.calibration)} for t, s in self.scorers.items()}
        torch.save({"shape": asdict(self.shape), "state": self.state, "spec": self.spec.to_dict(),
                    "run_id": self.run_id, "scorers": scorers}, buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "ModelBundle":
        from jobs.model.challengers import Scorer

        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        scorers = {t: Scorer(s["method"], bytes(s["params"].numpy()) if s["method"] != "network" else b"",
                             tuple(s["calibration"])) for t, s in raw.get("scorers", {}).items()}
        return cls(NetworkShape(**raw["shape"]), raw["state"], InputSpec.from_dict(raw["spec"]), raw["run_id"], scorers)
