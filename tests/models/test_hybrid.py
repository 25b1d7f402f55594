import json

import lightning as L
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hybridjet.data.datamodule import JetDataModule
from hybridjet.errors import HybridjetError
from hybridjet.models.encoder import default_periodic_sigma
from hybridjet.train.classifiers import HybridClassifier
from hybridjet.train.recipes import train_classifier


def _fit(tiny_llama, data, run_dir, seed=0, **kw):
    L.seed_everything(seed, verbose=False)
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", **kw)
    metrics = train_classifier(model, JetDataModule(str(data), batch_size=32), run_dir, max_epochs=2,
                               progress=False, deterministic=True)
    return model, metrics


@pytest.fixture(scope="module")
def trained(tiny_llama, toy_jets_h5, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("hybrid") / "run"
    model, metrics = _fit(tiny_llama, toy_jets_h5, run_dir)
    return model, metrics, run_dir


def test_hybrid_learns_and_writes_a_run_directory(trained):
    model, metrics, run_dir = trained
    assert metrics["val_auc"] > 0.85 and metrics["test_auc"] > 0.85
    for name in ("model.json", "weights.safetensors", "metrics.json", "scores.h5", "checkpoints/last.ckpt"):
        assert (run_dir / name).exists(), name
    saved = load_file(str(run_dir / "weights.safetensors"))
    trainable = {n for n, p in model.net.named_parameters() if p.requires_grad}
    assert set(saved) == trainable
    assert any("lora_" in k for k in saved) and not any("base_layer" in k or "embed_tokens" in k for k in saved)
    meta = json.loads((run_dir / "metrics.json").read_text())
    assert meta["model"] == "hybrid" and meta["test"]["n_events"] == 60


def test_checkpoint_holds_only_trainable_weights(trained):
    model, _, run_dir = trained
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(ckpt["state_dict"]) == trainable
    assert ckpt["hybridjet"]["normalizer"]["names"][0] == "j1_log_pt"


def test_every_event_has_the_same_sequence_length(trained):
    model, _, _ = trained
    net = model.net
    assert net.sequence_length == len(net.prefix_ids) + 8 + len(net.suffix_ids)
    x = torch.zeros(3, len(model.normalizer.names))
    assert model.eval()(x).shape == (3,)


def test_from_pretrained_reproduces_scores(trained, toy_jets_h5, tiny_llama):
    model, _, run_dir = trained
    from hybridjet.eval.scores import read_scores

    test = read_scores(run_dir / "scores.h5", "test")
    clf = HybridClassifier.from_pretrained(run_dir, model=str(tiny_llama))
    from hybridjet.data.store import read_jets

    arrays = read_jets(toy_jets_h5)
    order = np.searchsorted(arrays.event_id, test.event_id)
    probs = clf.predict_proba(arrays.subset(order), batch_size=17)
    np.testing.assert_allclose(probs, test.score, atol=1e-5 if clf.device.type == "cpu" else 2e-3)  # bf16 on a GPU
    all_probs = clf.predict_proba(str(toy_jets_h5))
    assert all_probs.shape == (600,) and np.allclose(all_probs[order], probs, atol=1e-5)


def test_from_pretrained_errors(tmp_path, trained):
    _, _, run_dir = trained
    with pytest.raises(HybridjetError, match="not a hybridjet run"):
        HybridClassifier.from_pretrained(tmp_path)
    meta = json.loads((run_dir / "model.json").read_text())
    meta["base_model"]["sha256"] = "0" * 64
    fake = tmp_path / "other"
    fake.mkdir()
    (fake / "model.json").write_text(json.dumps(meta))
    with pytest.raises(HybridjetError, match="trained on base model"):
        HybridClassifier.from_pretrained(fake)


def test_same_seed_same_metrics(tiny_llama, toy_jets_h5, tmp_path):
    _, first = _fit(tiny_llama, toy_jets_h5, tmp_path / "a", seed=3)
    _, second = _fit(tiny_llama, toy_jets_h5, tmp_path / "b", seed=3)
    assert first["test_auc"] == second["test_auc"] and first["test_loss"] == second["test_loss"]


def test_ablation_and_frozen_llm(tiny_llama, toy_jets_h5, tmp_path):
    ablation, metrics = _fit(tiny_llama, toy_jets_h5, tmp_path / "ablation", use_llm=False)
    assert ablation.net.llm is None and metrics["test_auc"] > 0.85
    frozen = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", lora=None)
    frozen.build(10)
    names = {n for n, p in frozen.net.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("encoder.", "head.")) for n in names)


def test_nf4_hybrid_trains_lora_encoder_head_only(tiny_llama):
    import bitsandbytes as bnb

    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="nf4")
    model.build(5)
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.net.llm.modules())
    before = {n: p.detach().clone() for n, p in model.net.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    logits = model(torch.randn(4, 5, device=model.device))
    torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([0.0, 1, 0, 1], device=model.device)).backward()
    opt.step()
    changed = {n for n, p in model.net.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert any("lora_" in n for n in changed) and any(n.startswith("encoder.") for n in changed)
    assert all("lora_" in n or n.startswith(("encoder.", "head.")) for n in changed)


def test_cached_prefix_gives_the_same_logits_and_gradients(tiny_llama):
    torch.manual_seed(0)
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", dtype="fp32")
    model.build(5)
    model.eval()  # no dropout: both paths must see the same network
    x = torch.randn(4, 5, device=model.device)
    cached = model(x)
    cached.sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.net.set_runtime(model.net.runtime.replace(cache_prefix=False))
    full = model(x)
    full.sum().backward()
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, dict(model.named_parameters())[name].grad, atol=1e-5, rtol=1e-3)


def test_dense_inference_scores_like_the_adapter_model(trained, toy_jets_h5, tiny_llama, tmp_path):
    _, _, run_dir = trained
    adapter = HybridClassifier.from_pretrained(run_dir, model=str(tiny_llama))
    dense = HybridClassifier.from_pretrained(run_dir, model=str(tiny_llama), dense=True)
    assert dense.dense_inference and not any("lora_" in n for n, _ in dense.named_parameters())
    np.testing.assert_allclose(dense.predict_proba(str(toy_jets_h5)), adapter.predict_proba(str(toy_jets_h5)),
                               atol=1e-4 if dense.device.type == "cpu" else 2e-3)  # bf16 on a GPU
    with pytest.raises(HybridjetError, match="densified"):
        dense.save_run(tmp_path / "dense")


def test_prefix_sharing_default_follows_device_and_batch(tiny_llama):
    from hybridjet.runtime import SHARED_PREFIX_ANY_BATCH_HIDDEN, SHARED_PREFIX_MIN_GPU_BATCH

    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", torch_compile=True)
    policy = model.net.policy
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert model.net.runtime.cache_prefix is None
    assert policy.shares_prefix(8, cpu)  # CPUs: fewer FLOPs always pay
    assert not policy.shares_prefix(SHARED_PREFIX_MIN_GPU_BATCH - 1, cuda)  # launch-bound GPU batches
    assert policy.shares_prefix(SHARED_PREFIX_MIN_GPU_BATCH, cuda)
    policy.hidden_size = SHARED_PREFIX_ANY_BATCH_HIDDEN  # as wide as a 3B model: compute-bound, shared at any batch
    assert policy.shares_prefix(8, cuda)
    policy.hidden_size = SHARED_PREFIX_ANY_BATCH_HIDDEN - 1
    assert not policy.shares_prefix(8, cuda)
    policy.decide_compilation(cuda)  # compiled on CUDA: replays CUDA graphs, no launch cost left, shared at any batch
    assert policy.replays_cuda_graphs(8) and policy.shares_prefix(8, cuda)
    model.net.set_runtime(model.net.runtime.replace(cache_prefix=True))
    assert model.net.policy.shares_prefix(8, cuda)
    model.net.set_runtime(model.net.runtime.replace(cache_prefix=False))
    assert not model.net.policy.shares_prefix(1 << 20, cpu)


def test_prefix_attention_default_is_flex_only_for_compiled_half_precision_gpu_scoring(tiny_llama):
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none")
    policy = model.net.policy
    cpu, cuda, bf16 = torch.device("cpu"), torch.device("cuda"), torch.bfloat16
    assert model.net.runtime.prefix_attention == "auto"
    policy.compiled_for = cuda
    assert policy.attention_kind(cuda, bf16, training=False) == "flex"
    assert policy.attention_kind(cuda, torch.float32, training=False) == "matmul"  # fp32 residual: no fused kernel
    assert policy.attention_kind(cpu, bf16, training=False) == "matmul"
    policy.compiled_for = None
    assert policy.attention_kind(cuda, bf16, training=False) == "matmul"  # eager FlexAttention materialises scores
    policy.compiled_for = cuda
    assert policy.attention_kind(cuda, bf16, training=True) == "matmul"  # training: FlexAttention's backward is slower
    model.net.set_runtime(model.net.runtime.replace(prefix_attention="flex"))
    assert model.net.policy.attention_kind(cpu, torch.float32, training=True) == "flex"


def test_unknown_prefix_attention_is_a_one_line_error(tiny_llama):
    with pytest.raises(HybridjetError, match="^prefix_attention: expected one of auto, matmul, flex"):
        HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", prefix_attention="sdpa")
    for field in ("cache_prefix", "torch_compile", "cuda_graphs"):  # tri-state switches: a string is not "on"
        with pytest.raises(HybridjetError, match=f"^{field}: expected true, false or null"):
            HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", **{field: "yes"})


def test_periodic_sigma_defaults_per_feature_set_and_rejects_non_positive_values():
    """``periodic_sigma=None``: the frequencies start with spread 0.3 for fourvec, 0.1 for substructure (measured
    best per feature set); an explicit value wins; zero, negatives and strings are one-line errors."""
    def frequency_spread(feature_set, **kw):
        torch.manual_seed(0)
        model = HybridClassifier.from_settings(use_llm=False, **kw)
        model.feature_set = feature_set
        model.build(40)  # 40 features x 16 frequencies
        configured = model.net.config.periodic_sigma
        return (default_periodic_sigma(feature_set) if configured is None else configured,
                float(model.net.encoder.embed_features.frequencies.std()))

    fourvec, substructure = frequency_spread("fourvec"), frequency_spread("substructure")
    assert fourvec[0] == 0.3 and 0.27 < fourvec[1] < 0.33
    assert substructure[0] == 0.1 and 0.09 < substructure[1] < 0.11
    explicit = frequency_spread("substructure", periodic_sigma=1.0)
    assert explicit[0] == 1.0 and 0.9 < explicit[1] < 1.1
    for bad in (0, -0.1, "0.3", True):
        with pytest.raises(HybridjetError, match="^periodic_sigma: expected a positive number or null"):
            HybridClassifier.from_settings(use_llm=False, periodic_sigma=bad)


def test_default_prompt_puts_the_soft_tokens_last(tiny_llama):
    """Without an ``<<EVENT>>`` slot all text is the shared prefix: only the k soft tokens run per event, and the
    prefix-sharing path still equals the full sequence."""
    torch.manual_seed(0)
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", dtype="fp32", n_soft_tokens=3)
    model.build(5)
    model.eval()
    assert len(model.net.suffix_ids) == 0 and model.net.sequence_length == len(model.net.prefix_ids) + 3
    x = torch.randn(4, 5, device=model.device)
    with torch.no_grad():
        shared = model(x)
        model.net.set_runtime(model.net.runtime.replace(cache_prefix=False))
        torch.testing.assert_close(model(x), shared, atol=1e-5, rtol=1e-4)


def test_compiled_hybrid_scores_like_the_eager_one(tiny_llama):
    torch.manual_seed(0)
    eager = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", dtype="fp32", torch_compile=False)
    eager.build(5)
    compiled = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", dtype="fp32", torch_compile=True)
    compiled.build(5)
    compiled.load_state_dict(eager.state_dict())
    eager.eval()
    compiled.eval()
    x = torch.randn(6, 5, device=eager.device)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), atol=1e-5, rtol=1e-4)
    assert compiled.net.policy.is_compiled and not eager.net.policy.is_compiled
    checkpointed = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", torch_compile=True,
                                    gradient_checkpointing=True)
    checkpointed.build(5)
    checkpointed(x)
    assert not checkpointed.net.policy.is_compiled  # checkpointing re-runs layers in backward: left eager


def test_compile_default_is_cuda_with_triton(monkeypatch):
    import torch.utils._triton

    from hybridjet import runtime as hybrid

    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: True)
    assert hybrid.compiles_by_default(cuda) and not hybrid.compiles_by_default(torch.device("cpu"))
    monkeypatch.setattr(torch.utils._triton, "has_triton", lambda: False)
    assert not hybrid.compiles_by_default(cuda)


def test_classifier_follows_its_llm_device_and_scores_small_batches_off_the_gpu(tiny_llama):
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none")
    assert model.device == next(model.net.llm.parameters()).device  # where the LLM loaded (the GPU on a GPU machine)
    assert model.scoring_batch_size() == (16384 if model.device.type == "cuda" else 256)


def _eager_and_compiled(trained, tiny_llama):
    """The trained run loaded eager and compiled (fresh Dynamo state), and the batch sizes the compiled one scores."""
    import torch._dynamo

    _, _, run_dir = trained
    eager = HybridClassifier.from_pretrained(run_dir, model=str(tiny_llama), dtype="fp32", torch_compile=False)
    compiled = HybridClassifier.from_pretrained(run_dir, model=str(tiny_llama), dtype="fp32", torch_compile=True)
    sizes = []
    score = compiled.score
    compiled.score = lambda batch: sizes.append(len(batch["features"])) or score(batch)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    return eager, compiled, sizes


def test_compiled_hybrid_pads_its_last_batch_and_scores_the_same(trained, toy_jets_h5, tiny_llama):
    """A compiled model scores a shorter last batch padded to the full size (one batch shape, one compilation);
    the padding rows are dropped and the real events' scores are unchanged."""
    import torch._dynamo

    eager, compiled, sizes = _eager_and_compiled(trained, tiny_llama)
    with torch._dynamo.config.patch(recompile_limit=8):  # torch's default, whatever ran before
        probs = compiled.predict_proba(str(toy_jets_h5), batch_size=256)  # 600 events: 256, 256, 88 -> 256
        assert torch._dynamo.config.recompile_limit == 8  # raised around the model's layers only, not the process
    assert compiled.pads_partial_batches() and not eager.pads_partial_batches()
    assert sizes == [256, 256, 256] and probs.shape == (600,)
    # one shape, one compilation: the layers' graph and the last layer's (its last position)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2
    np.testing.assert_allclose(probs, eager.predict_proba(str(toy_jets_h5), batch_size=256), atol=1e-5)


def test_compiled_hybrid_scores_inputs_of_many_lengths_with_one_shape(trained, tiny_llama):
    """Feature arrays of 20, 25 and 30 events (fewer than one batch) are each padded to 32 events: one static graph
    for all three, not one compilation per length; the scores are the eager model's."""
    eager, compiled, sizes = _eager_and_compiled(trained, tiny_llama)
    rng = np.random.default_rng(3)
    for n in (20, 25, 30):
        features = rng.normal(size=(n, len(compiled.normalizer.names))).astype(np.float32)
        probs = compiled.predict_proba(features, batch_size=256)
        assert probs.shape == (n,)
        np.testing.assert_allclose(probs, eager.predict_proba(features, batch_size=256), atol=1e-5)
    assert sizes == [32, 32, 32]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2  # the layers' graph and the last layer's


def test_a_loops_shorter_last_batch_is_padded_with_the_same_loss_and_gradients(tiny_llama, monkeypatch):
    """Training, validation and test pad an epoch's shorter last batch to the epoch's first batch size when the
    model pads (a compiled one: a new shape would compile again, and under DDP stall the other ranks); the
    padding changes neither the loss nor the gradients, and a new epoch takes its own first batch's size."""
    torch.manual_seed(0)
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", dtype="fp32", dropout=0.0, lora_dropout=0.0)
    model.build(5)
    model.pos_weight = 1.0

    def batch(n):
        batch = {"features": torch.randn(n, 5), "label": (torch.rand(n) > 0.5).float(), "event_id": torch.arange(n)}
        return {k: v.to(model.device) for k, v in batch.items()}  # where Lightning puts a batch

    sizes = []
    score = model.score
    monkeypatch.setattr(model, "score", lambda b: sizes.append(len(b["features"])) or score(b))

    def loss_and_grads(b, batch_idx):
        model.zero_grad()
        loss = model.loss(b, batch_idx)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    first, last = batch(8), batch(3)
    loss_and_grads(first, 0)  # the epoch's first batch: 8 events
    monkeypatch.setattr(model, "pads_partial_batches", lambda: True)
    padded, padded_grads = loss_and_grads(last, 1)
    monkeypatch.setattr(model, "pads_partial_batches", lambda: False)
    plain, plain_grads = loss_and_grads(last, 1)
    assert sizes == [8, 8, 3]
    torch.testing.assert_close(padded, plain, atol=1e-6, rtol=1e-5)
    assert padded_grads.keys() == plain_grads.keys() and padded_grads
    for name, grad in padded_grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-6, rtol=1e-4)
    monkeypatch.setattr(model, "pads_partial_batches", lambda: True)
    sizes.clear()
    model.loss(last, 0)  # a new epoch that starts with 3 events: nothing to pad to
    model.validation_step(batch(8), 0)  # each loop keeps its own size
    model.validation_step(batch(2), 1)
    assert sizes == [3, 8, 8] and [len(o["score"]) for o in model._eval_outputs] == [8, 2]


def test_compiled_fit_scores_one_batch_shape_per_loop_and_counts_real_events(tiny_llama, toy_jets_h5, tmp_path):
    """A compiled fit pads each epoch's shorter last batch (480 training events in batches of 64, 60 validation and
    test events in batches of 32): every forward of a loop sees one batch size, so the layers compile once instead of
    again at every epoch's end, and the metrics count the real events only."""
    model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", dtype="fp32", torch_compile=True)
    sizes = []
    score = model.score
    model.score = lambda batch: sizes.append(len(batch["features"])) or score(batch)
    run_dir = tmp_path / "run"
    train_classifier(model, JetDataModule(str(toy_jets_h5), batch_size=64, eval_batch_size=32), run_dir,
                     max_epochs=2, progress=False)
    assert model.net.policy.is_compiled and set(sizes) == {64, 32}
    meta = json.loads((run_dir / "metrics.json").read_text())
    assert meta["test"]["n_events"] == 60 and 0.0 <= meta["test"]["auc"] <= 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
def test_cuda_graph_replays_train_and_score_like_plain_compiled_layers(tiny_llama, toy_jets_h5, tmp_path):
    """Lightning fit (training, validation, test) with the shared-prefix layers replayed from CUDA graphs gives the
    weights and scores of the same fit without them."""
    kw = dict(dtype="fp32", cache_prefix=True, torch_compile=True, lora_dropout=0.0, dropout=0.0)
    graphs, _ = _fit(tiny_llama, toy_jets_h5, tmp_path / "graphs", cuda_graphs=True, **kw)
    plain, _ = _fit(tiny_llama, toy_jets_h5, tmp_path / "plain", cuda_graphs=False, **kw)
    assert graphs.net.policy.replays_cuda_graphs(128) and not plain.net.policy.replays_cuda_graphs(128)
    np.testing.assert_allclose(graphs.predict_proba(str(toy_jets_h5), batch_size=128),
                               plain.predict_proba(str(toy_jets_h5), batch_size=128), atol=1e-4)


def test_cuda_graph_default_is_compiled_gpu_batches_up_to_the_limit(tiny_llama):
    from hybridjet.runtime import CUDA_GRAPHS_MAX_BATCH

    def decided(device, **kw):
        model = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", **{"torch_compile": True, **kw})
        model.net.policy.decide_compilation(torch.device(device))  # decides; layers compile lazily, at their first call
        return model.net.policy

    auto = decided("cuda")
    assert auto.replays_cuda_graphs(CUDA_GRAPHS_MAX_BATCH) and not auto.replays_cuda_graphs(CUDA_GRAPHS_MAX_BATCH + 1)
    assert decided("cuda", cuda_graphs=True).replays_cuda_graphs(65536)
    assert not decided("cuda", cuda_graphs=False).replays_cuda_graphs(1024)
    assert not decided("cpu", cuda_graphs=True).replays_cuda_graphs(1024)  # CUDA graphs need CUDA
    assert not decided("cuda", torch_compile=False).replays_cuda_graphs(1024)  # only compiled layers replay


def test_a_run_records_its_requested_numerics_and_loads_with_them(tiny_llama, toy_jets_h5, tmp_path):
    """Quantization and dtype change a model's numbers: a run records them as requested (``auto`` stays automatic)
    and loads with them, unless told otherwise; how it ran (compilation, graphs, attention) is not recorded."""
    model, _ = _fit(tiny_llama, toy_jets_h5, tmp_path / "run", dtype="fp32")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["numerics"] == {"quantization": "none", "dtype": "fp32"}
    assert "torch_compile" not in json.dumps(meta["arch"]) and "runtime" not in meta
    loaded = HybridClassifier.from_pretrained(tmp_path / "run")
    assert (loaded.net.runtime.quantization, loaded.net.runtime.dtype) == ("none", "fp32")
    other = HybridClassifier.from_pretrained(tmp_path / "run", dtype="bf16")
    assert other.net.runtime.dtype == "bf16" and other.net.runtime.quantization == "none"


def test_a_named_token_prompt_writes_each_feature_after_its_name_and_round_trips(tiny_llama, toy_jets_h5, tmp_path):
    """prompt_tokens: named (issue 34's lever): one value token per feature, after the feature's name in words."""
    from hybridjet.train.recipes import train_classifier

    L.seed_everything(0, verbose=False)
    clf = HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", prompt_tokens="named",
                                         encoder_hidden=16)
    train_classifier(clf, JetDataModule(str(toy_jets_h5), batch_size=64), tmp_path / "run", max_epochs=1,
                     progress=False)
    net = clf.net
    text = net.backbone.tokenizer.decode(torch.cat([net.prefix_ids, *net.between_ids]).tolist())
    assert "jet 1 log transverse momentum: " in text and ", log dijet mass: " in text
    assert len(net.between_ids) == 15 and net.sequence_length == len(net.prefix_ids) + sum(
        1 + len(ids) for ids in net.between_ids)
    loaded = HybridClassifier.from_pretrained(tmp_path / "run")
    np.testing.assert_allclose(loaded.predict_proba(str(toy_jets_h5)), clf.predict_proba(str(toy_jets_h5)),
                               atol=1e-5)
    from hybridjet import HybridConfig

    with pytest.raises(HybridjetError, match="prompt_tokens: named writes each feature"):
        HybridConfig(prompt_tokens="named", use_llm=False)


def test_llm_layers_keeps_the_first_layers_and_round_trips(tiny_llama, toy_jets_h5, tmp_path):
    """``llm_layers``: the LLM cut to its first layers (what the full model computes up to there, then its final norm),
    recorded with the run and cut the same on loading; a count the model lacks is one line."""
    from hybridjet.llm.backbone import decoder_of, load_backbone

    cut, metrics = _fit(tiny_llama, toy_jets_h5, tmp_path / "cut", llm_layers=1)
    decoder = decoder_of(cut.net.llm)
    assert len(decoder.layers) == 1 and decoder.config.num_hidden_layers == 1 and metrics["test_auc"] > 0.8
    full = decoder_of(load_backbone(str(tiny_llama), quantization="none").model)
    assert len(full.layers) == 2
    x = torch.randn(3, 5, full.config.hidden_size)
    with torch.no_grad():
        expected = full.norm(full(inputs_embeds=x, output_hidden_states=True).hidden_states[1])
        got = decoder_of(load_backbone(str(tiny_llama), quantization="none", layers=1).model)(
            inputs_embeds=x).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    again = HybridClassifier.from_pretrained(tmp_path / "cut", model=str(tiny_llama))
    assert len(decoder_of(again.net.llm).layers) == 1
    with pytest.raises(HybridjetError, match=r"llm_layers: expected a whole number from 1 to 2 \(the model's decoder"):
        HybridClassifier.from_settings(model=str(tiny_llama), quantization="none", llm_layers=3)
    with pytest.raises(HybridjetError, match="llm_layers: the ablation has no LLM"):
        HybridClassifier.from_settings(model=str(tiny_llama), use_llm=False, llm_layers=1)
