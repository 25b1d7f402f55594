"""The random-weight control (``init: random``): the pretrained model's architecture, shape and parameter count with
its weights drawn anew, seeded, and a hybrid trained on it saved and loaded like any other."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hybridjet.errors import HybridjetError
from hybridjet.llm.backbone import load_backbone


def test_random_weights_have_the_pretrained_shapes_and_are_drawn_by_the_seed(tiny_llama, tmp_path):
    pretrained = load_backbone(tiny_llama, quantization="none", cache_dir=tmp_path)
    drawn = [load_backbone(tiny_llama, quantization="none", cache_dir=tmp_path, init="random", init_seed=s)
             for s in (5, 5, 6)]  # (the tiny model itself was drawn with seed 0)
    shapes = {n: p.shape for n, p in pretrained.model.named_parameters()}
    for bb in drawn:
        assert {n: p.shape for n, p in bb.model.named_parameters()} == shapes
        assert bb.identity.sha256 == pretrained.identity.sha256 and "random weights" in bb.identity.name
        assert bb.tokenizer.get_vocab() == pretrained.tokenizer.get_vocab()
    name = "model.layers.0.self_attn.q_proj.weight"
    weights = [dict(bb.model.named_parameters())[name] for bb in (pretrained, *drawn)]
    assert torch.equal(weights[1], weights[2]) and not torch.equal(weights[1], weights[3])
    assert not torch.equal(weights[0], weights[1])
    assert len(list((tmp_path / "random").glob("*-seed[0-9]"))) == 2  # one entry per seed, made once
    with pytest.raises(HybridjetError, match="init: expected one of pretrained, random"):
        load_backbone(tiny_llama, quantization="none", init="shuffled")


def test_a_hybrid_on_random_weights_trains_saves_and_loads(tiny_llama, toy_jets_h5, tmp_path):
    import lightning as L

    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.train.classifiers import HybridClassifier
    from hybridjet.train.recipes import train_classifier

    L.seed_everything(0, verbose=False)
    settings = {"model": str(tiny_llama), "quantization": "none", "n_soft_tokens": 2}
    pretrained = HybridClassifier.from_settings(**settings)
    random = HybridClassifier.from_settings(**settings, init="random", init_seed=3)
    count = lambda clf: sum(p.numel() for p in clf.net.llm.parameters())  # noqa: E731
    assert count(random) == count(pretrained)
    train_classifier(random, JetDataModule(str(toy_jets_h5), batch_size=64), tmp_path / "run", max_epochs=1,
                     progress=False)
    loaded = HybridClassifier.from_pretrained(tmp_path / "run")
    assert loaded.net.config.init == "random" and loaded.net.config.init_seed == 3
    np.testing.assert_allclose(loaded.predict_proba(str(toy_jets_h5)), random.predict_proba(str(toy_jets_h5)),
                               atol=1e-5)


def test_the_text_baseline_on_random_weights_or_fewer_layers_trains_saves_and_loads(tiny_llama, toy_jets_h5,
                                                                                      tmp_path):
    """The text baseline takes the hybrid's backbone controls: before, ``init`` and ``llm_layers`` were unknown to it,
    so no study could tell what pretraining adds to reading numbers as text."""
    import lightning as L

    from hybridjet.data.datamodule import JetDataModule
    from hybridjet.train.classifiers import TextPromptClassifier
    from hybridjet.train.recipes import train_classifier

    L.seed_everything(0, verbose=False)
    settings = {"model": str(tiny_llama), "quantization": "none"}
    pretrained = TextPromptClassifier.from_settings(**settings)
    random = TextPromptClassifier.from_settings(**settings, init="random", init_seed=3, llm_layers=1)
    from hybridjet.llm.backbone import decoder_of

    layers = [decoder_of(clf.net.llm).layers for clf in (pretrained, random)]
    weights = [layer[0].self_attn.q_proj.base_layer.weight for layer in layers]
    assert weights[0].shape == weights[1].shape and not torch.equal(*weights)
    assert len(layers[1]) == 1 < len(layers[0])
    train_classifier(random, JetDataModule(str(toy_jets_h5), batch_size=64), tmp_path / "run", max_epochs=1,
                     progress=False)
    loaded = TextPromptClassifier.from_pretrained(tmp_path / "run")
    assert (loaded.net.config.init, loaded.net.config.init_seed, loaded.net.config.llm_layers) == ("random", 3, 1)
    np.testing.assert_allclose(loaded.predict_proba(str(toy_jets_h5)), random.predict_proba(str(toy_jets_h5)),
                               atol=1e-5)
    with pytest.raises(HybridjetError, match="init: expected one of pretrained, random"):
        TextPromptClassifier.from_settings(**settings, init="shuffled")


def test_full_training_makes_every_llm_weight_trainable_and_refuses_a_4bit_runtime(tiny_llama):
    from hybridjet.train.classifiers import HybridClassifier

    full = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", lora="full", n_soft_tokens=2)
    assert all(p.requires_grad for p in full.net.llm.parameters())
    with pytest.raises(HybridjetError, match="lora: full trains every weight"):
        HybridClassifier.from_settings(model=str(tiny_llama), quantization="nf4", lora="full")
