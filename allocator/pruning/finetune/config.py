"""Training settings and records (no torch): paper 1's recipe as defaults, and what a training run returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from allocator.errors import InvalidInputError

SELECT_ON = ("validation", "test", "last")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; defaults are paper 1's recipe: SGD, learning rate 0.01, momentum 0.9, Nesterov, no weight
    decay, batch 128, 15 epochs, checkpoint of lowest loss on the validation split."""

    epochs: int = 15
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 0.0
    batch_size: int = 128
    select_on: str = "validation"

    def __post_init__(self) -> None:
        if self.select_on not in SELECT_ON:
            raise InvalidInputError(f"select_on is {self.select_on!r}; accepted: {', '.join(SELECT_ON)}")
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise InvalidInputError(f"epochs is {self.epochs!r}; expected an integer >= 0")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise InvalidInputError(f"batch size is {self.batch_size!r}; expected an integer >= 1")
        if not self.lr > 0:
            raise InvalidInputError(f"learning rate is {self.lr!r}; expected a positive number")


@dataclass
class EpochRecord:
    """One epoch: mean training loss over its minibatches, loss and accuracy on the selection split, seconds."""

    epoch: int
    train_loss: float
    select_loss: float
    select_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    """History per epoch and the epoch whose weights were kept (0: the weights before training)."""

    select_on: str
    best_epoch: int
    history: list[EpochRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"select_on": self.select_on, "best_epoch": self.best_epoch,
                "history": [asdict(record) for record in self.history]}
