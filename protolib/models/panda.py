"""``panda``: PANDA (Reiss et al.; reference talreiss/PANDA), the paper's model for the one-vs-rest
data sets.

- Network psi: an ImageNet ResNet (``backbone``, resnet152), features = the 2048-d global average
  pool (not normalised). Input: resize ``image_size`` * 256 / 224, centre crop ``image_size``
  (224), ImageNet normalisation, grey images repeated to 3 channels.
- Training: only layer3 and layer4 are trained (the reference's ``freeze_parameters``; their
  BatchNorm affine parameters train too, as there), the whole net stays in eval mode (BatchNorm
  uses its ImageNet running statistics). Centre c = mean training feature of the untrained net,
  fixed. Loss: the reference's ``CompactnessLoss``, mean over the batch of ||psi(x) - c||^2 / d
  (d = feature dimension). SGD lr 1e-2 (``lr``), momentum 0.9, weight decay 5e-5, gradient norm
  clipped to 1e-3 (``grad_clip``, as the reference), shuffled batches of ``train_batch_size``
  32, a constant ``steps`` 2355 (the paper).
- Score: sum of squared L2 distances to the k (``k`` 2) nearest training features of the
  trained net (k capped at the number of training images).

Against the reference (talreiss/PANDA) and the paper; * = deviation:

=====================  ==============================  ===================================  ==========
setting                protolib default                reference (file)                     paper
=====================  ==============================  ===================================  ==========
network                ResNet152, 2048-d avg-pool      ``utils.py`` get_resnet_model(152)   ResNet152
trained layers, BN     layer3+4, eval mode             ``utils.py`` freeze_parameters,      -
                                                       ``panda.py`` model.eval()
optimiser              SGD 1e-2, mom. 0.9, wd 5e-5     ``panda.py`` train_model             lr 1e-2
clip, batch            grad norm 1e-3, 32              ``panda.py`` run_epoch, --batch_size -
training length        * 2355 steps                    ``panda.py``: 15 epochs              2355 steps
score                  k = 2 squared L2 (faiss, CPU)   ``utils.py`` knn_score (IndexFlatL2) k = 2
precision              fp32 (bf16/fp16 opt-in: *)      float32                              -
=====================  ==============================  ===================================  ==========

Single-sample detectors: with one training image c = psi0(x), so the loss and its gradient are
zero from the first step (the paper: "training has no effect"); ``fit`` then skips the loop
(``train_single: false``), which makes the detector exactly the ``knn`` detector on the same
backbone, and ``score_matrix`` is one feature pass: squared distances from the candidates' to the
val images' psi0 features. (Literal SGD would still shrink layer3/4 by weight decay, by about
lr * wd per step; ``train_single: true`` runs it.) ``score_matrix`` falls back to the definition
when ``train_single`` is true.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from protolib.models.backbones import load_resnet, resolve_device
from protolib.models.base import DETECTORS, Detector
from protolib.models.feature_maps import (
    PREPARED_LIMIT_BYTES,
    PreparedImages,
    batches,
    prepare_images,
    read_saved,
    save_detector,
)
from protolib.models.neighbours import knn_score, squared_distances
from protolib.models.precision import check_features, check_precision, compute_context
from protolib.models.vmap_training import minibatch_stream

TRAINED_LAYERS = ("layer3", "layer4")


@DETECTORS.register("panda")
class PandaDetector(Detector):
    name = "panda"
    network_backbone = True

    def __init__(
        self,
        *,
        backbone: str = "resnet152",
        weights: str = "none",
        image_size: int = 224,
        batch_size: int = 64,
        k: int = 2,
        steps: int = 2355,
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 5e-5,
        grad_clip: float = 1e-3,
        train_batch_size: int = 32,
        train_single: bool = False,
        seed: int = 0,
        precision: str = "fp32",
        device: str = "auto",
    ) -> None:
        self.device = resolve_device(device)
        self.backbone, self.weights = backbone, weights
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.k = int(k)
        self.steps = int(steps)
        self.lr = float(lr)
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.grad_clip = float(grad_clip)
        self.train_batch_size = int(train_batch_size)
        self.train_single = bool(train_single)
        self.seed = int(seed)
        self.precision = check_precision(precision, "panda")
        net = load_resnet(backbone, weights)
        net.fc = torch.nn.Identity()
        self.net = net.to(self.device).eval()
        # the untrained net psi0: every fit starts from it (the pipeline refits one detector)
        self.pretrained = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        self.bank: np.ndarray | None = None

    def reset(self) -> None:
        """Back to the untrained net psi0, unfitted."""
        self.net.load_state_dict(self.pretrained)
        self.net.eval()
        self.bank = None

    # ------------------------------------------------------------------ features
    def _inputs(self, images: np.ndarray) -> torch.Tensor:
        return prepare_images(images, self.image_size, resize=None, imagenet_norm=True)

    def prepared_images(self, images: np.ndarray) -> np.ndarray | PreparedImages:
        """Images scored under many fits, decoded and resized once."""
        return PreparedImages.maybe(images, self.image_size, None)

    def embed(self, images: np.ndarray, precision: str | None = None) -> np.ndarray:
        """(N, d) pooled features of the current net, float32 (computed at ``precision``, by
        default the detector's), checked finite."""
        net = self.net
        net.eval()
        out = []
        with torch.inference_mode():
            for sl in batches(len(images), self.batch_size):
                x = self._inputs(images[sl]).to(self.device).contiguous(memory_format=torch.channels_last)
                with compute_context(self.device, precision or self.precision):
                    out.append(net(x).float().cpu().numpy())
        feats = np.concatenate(out) if out else np.empty((0, 0), dtype=np.float32)
        check_features(feats, f"panda {self.backbone}", "avgpool")
        return feats

    # ------------------------------------------------------------------ training
    def _train(self, images: np.ndarray) -> None:
        net = self.net
        net.eval()  # BatchNorm keeps its running statistics throughout (the reference)
        params = []
        for name, p in net.named_parameters():
            trained = name.split(".")[0] in TRAINED_LAYERS
            p.requires_grad_(trained)
            if trained:
                params.append(p)
        # in full precision, like the training forward passes it is compared with
        center = torch.from_numpy(self.embed(images, precision="fp32").mean(0)).to(self.device)
        inputs = self._inputs(images)
        if inputs.numel() * inputs.element_size() <= PREPARED_LIMIT_BYTES:
            inputs = inputs.to(self.device)  # copied once, not one batch per step
        optimizer = torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        stream = minibatch_stream(len(inputs), self.train_batch_size, torch.Generator().manual_seed(self.seed))
        for _ in range(self.steps):
            x = inputs[next(stream).to(inputs.device)].to(self.device).contiguous(memory_format=torch.channels_last)
            optimizer.zero_grad(set_to_none=True)
            with compute_context(self.device, self.precision, training=True):
                feats = net(x).float()
            loss = ((feats - center) ** 2).sum(1).div(feats.shape[1]).mean()
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            optimizer.step()
        for p in net.parameters():
            p.requires_grad_(False)
        net.eval()

    def fit(self, images: np.ndarray) -> PandaDetector:
        if len(images) == 0:
            raise ValueError("panda: cannot fit on zero training images")
        self.reset()
        if len(images) > 1 or self.train_single:
            self._train(images)
        self.bank = self.embed(images).astype(np.float64)
        return self

    def score(self, images: np.ndarray) -> np.ndarray:
        if self.bank is None:
            raise RuntimeError("panda: score called before fit")
        return knn_score(self.bank, self.embed(images), self.k, device=self.device)

    def score_matrix(self, train_images: np.ndarray, val_images: np.ndarray) -> np.ndarray:
        """Row i: squared distances of the val features to candidate i's feature (untrained net)."""
        if self.train_single:
            return Detector.score_matrix(self, train_images, val_images)
        if len(train_images) == 0:
            return np.empty((0, len(val_images)))
        self.reset()
        return squared_distances(self.embed(train_images), self.embed(val_images), device=self.device)

    def __deepcopy__(self, memo: dict) -> PandaDetector:
        new = copy.copy(self)
        new.net = copy.deepcopy(self.net, memo)
        new.bank = None if self.bank is None else self.bank.copy()
        return new

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        if self.bank is None:
            raise RuntimeError("panda: save called before fit")
        pristine = {k: v for k, v in self.pretrained.items() if k.split(".")[0] in TRAINED_LAYERS}
        state = {
            "net": self.net.state_dict(),
            "pretrained_trained_layers": pristine,
            "bank": torch.from_numpy(self.bank),
        }
        save_detector(path, self.name, self.get_params(), state)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> PandaDetector:
        cfg, state = read_saved(path, cls.name)
        det = cls.from_saved(cfg, device=device)
        # psi0 = the saved net with its trained layers put back to their untrained values
        det.pretrained = {k: v.clone() for k, v in state["net"].items()}
        det.pretrained.update(state["pretrained_trained_layers"])
        det.net.load_state_dict(state["net"])
        det.net.eval()
        det.bank = state["bank"].numpy().astype(np.float64)
        return det
