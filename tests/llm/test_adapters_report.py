"""Adapters (save/load with base identity, merge/export), describe() and the ``model`` CLI, on the tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from hybridjet.cli import main
from hybridjet.errors import HybridjetError
from hybridjet.llm import describe, load_adapter, load_backbone, merge_and_export, save_adapter
from hybridjet.llm.testing import make_tiny_llama


def _trained(tiny_llama, quantization):
    torch.manual_seed(0)
    bb = load_backbone(tiny_llama, quantization=quantization, lora={"preset": "attn", "r": 4, "dropout": 0.0})
    opt = torch.optim.AdamW(bb.trainable_parameters(), lr=5e-2)
    ids = bb.tokenizer(["signal 1523 GeV"], return_tensors="pt").input_ids
    bb.model.train()
    for _ in range(2):
        bb.model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    bb.model.eval()
    return bb, ids


@pytest.fixture(scope="module")
def trained_adapter(tiny_llama, tmp_path_factory):
    bb, ids = _trained(tiny_llama, "none")
    out = save_adapter(bb, tmp_path_factory.mktemp("adapter") / "ad")
    with torch.no_grad():
        logits = bb.model(input_ids=ids).logits
    return out, ids, logits


def test_save_and_load_adapter(tiny_llama, trained_adapter):
    out, ids, logits = trained_adapter
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    meta = json.loads((out / "base_model.json").read_text())
    assert meta["base"]["sha256"] == load_backbone(tiny_llama, quantization="none").identity.sha256
    assert meta["lora"]["r"] == 4
    bb = load_adapter(tiny_llama, out, quantization="none")
    assert bb.lora.r == 4 and not bb.trainable_parameters()
    with torch.no_grad():
        torch.testing.assert_close(bb.model(input_ids=ids).logits, logits)
    bb2 = load_adapter(load_backbone(tiny_llama, quantization="nf4"), out, trainable=True)
    assert bb2.trainable_parameters() and all("lora_" in n for n, p in bb2.model.named_parameters()
                                              if p.requires_grad)


def test_adapter_refuses_other_base(trained_adapter, tmp_path):
    other = make_tiny_llama(tmp_path / "other", seed=1)
    with pytest.raises(HybridjetError, match="trained on"):
        load_adapter(other, trained_adapter[0], quantization="none")
    with pytest.raises(HybridjetError, match="trained on"):
        load_adapter(load_backbone(other, quantization="none"), trained_adapter[0])
    with pytest.raises(HybridjetError, match="adapter"):
        load_adapter(other, tmp_path)
    with pytest.raises(HybridjetError, match="no LoRA"):
        save_adapter(load_backbone(other, quantization="none"), tmp_path / "x")


def test_merge_and_export(tiny_llama, trained_adapter, tmp_path):
    out, ids, logits = trained_adapter
    merged = merge_and_export(tiny_llama, out, tmp_path / "merged")
    bb = load_backbone(merged, quantization="none")
    assert bb.lora is None and not any("lora" in n for n, _ in bb.model.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(bb.model(input_ids=ids).logits, logits, atol=1e-4, rtol=1e-4)
    assert json.loads((merged / "base_model.json").read_text())["merged_from"]["lora"]["r"] == 4


def test_describe_measures_tensors(tiny_llama):
    plain = describe(load_backbone(tiny_llama, quantization="none"))
    nf4 = describe(load_backbone(tiny_llama, quantization="nf4", lora="attn"))
    assert plain.trainable_params == 0 and plain.quantization == "none"
    # fp32: 4 bytes per weight (tied embedding counted once) + rotary buffers
    assert plain.total_params * 4 <= plain.weight_bytes < plain.total_params * 4 + 4096
    assert nf4.total_params > plain.total_params and 0 < nf4.trainable_pct < 100
    assert nf4.weight_bytes < plain.weight_bytes
    assert "weight memory" in nf4.table() and nf4.lora.startswith("r=16")


def test_cli_info_and_export(tiny_llama, trained_adapter, tmp_path, capsys):
    assert main(["model", "info", str(tiny_llama), "--quantization", "nf4", "--lora", "qkv", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["quantization"] == "nf4" and info["trainable_params"] > 0
    assert main(["model", "export", "--base", str(tiny_llama), "--adapter", str(trained_adapter[0]),
                 "--out", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert main(["model", "info", str(tmp_path / "nothing")]) == 2
    assert "hybridjet: error:" in capsys.readouterr().err


def test_export_never_replaces_a_folder_it_did_not_write(tiny_llama, trained_adapter, tmp_path):
    """Before: 'model export --out d' with a user's file in d exited 0 and the file was gone."""
    out, _, _ = trained_adapter
    user = tmp_path / "d"
    user.mkdir()
    (user / "analysis.py").write_text("keep")
    with pytest.raises(HybridjetError, match="holding 1 entry .analysis.py. and not a merged model hybridjet"):
        merge_and_export(tiny_llama, out, user)
    assert (user / "analysis.py").read_text() == "keep" and sorted(p.name for p in user.iterdir()) == ["analysis.py"]
    with pytest.raises(HybridjetError, match="holds the input"):
        merge_and_export(tiny_llama, out, out)
    merged = merge_and_export(tiny_llama, out, tmp_path / "merged")
    assert merge_and_export(tiny_llama, out, merged) == merged  # an earlier export is replaced


@pytest.mark.parametrize(("damage", "needle"), [
    (lambda d: _edit_json(d / "adapter_config.json", r=10_000_000), "r 10000000; expected a LoRA rank in 1..4096"),
    (lambda d: (d / "adapter_config.json").write_text("{broken"), "adapter_config.json: not valid JSON"),
    (lambda d: (d / "adapter_model.safetensors").write_bytes(b"\xff" * 64), "not a readable safetensors file"),
])
def test_a_damaged_adapter_is_one_line_before_anything_loads(trained_adapter, tmp_path, damage, needle):
    """Before: an rank of 1e7 allocated until the machine gave up; broken files were tracebacks."""
    import shutil

    from hybridjet.llm.adapters import read_adapter_meta

    adapter = tmp_path / "adapter"
    shutil.copytree(trained_adapter[0], adapter)
    damage(adapter)
    with pytest.raises(HybridjetError, match=needle):
        read_adapter_meta(adapter)


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
