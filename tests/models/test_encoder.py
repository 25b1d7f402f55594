import pytest
import torch

from hybridjet.models.encoder import PeriodicEmbedding, SoftPromptEncoder


def test_soft_tokens_have_the_llm_embedding_scale():
    enc = SoftPromptEncoder(7, n_tokens=4, embed_dim=32, hidden=16, embed_rms=0.5, numeric_embedding="periodic")
    tokens = enc(torch.randn(5, 7))
    assert tokens.shape == (5, 4, 32)
    torch.testing.assert_close(tokens.pow(2).mean(-1).sqrt(), torch.full((5, 4), 0.5), atol=1e-4, rtol=0)


def test_periodic_embedding_is_per_feature():
    emb = PeriodicEmbedding(3, n_frequencies=4, dim=5)
    x = torch.randn(6, 3)
    out = emb(x).view(6, 3, 5)
    changed = x.clone()
    changed[:, 1] += 1.0
    out2 = emb(changed).view(6, 3, 5)
    assert torch.equal(out[:, [0, 2]], out2[:, [0, 2]]) and not torch.equal(out[:, 1], out2[:, 1])


def test_periodic_encoder_separates_a_narrow_peak_that_a_linear_cut_cannot():
    """Signal in a narrow window of one feature (a mass peak): the embedding + MLP learns it quickly."""
    torch.manual_seed(0)
    x = torch.randn(2048, 2)
    y = ((x[:, 0] - 0.5).abs() < 0.15).float()
    enc = SoftPromptEncoder(2, n_tokens=1, embed_dim=8, hidden=32, layers=2, dropout=0.0,
                            numeric_embedding="periodic", periodic_sigma=0.3)
    head = torch.nn.Linear(8, 1)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=3e-3)
    for _ in range(300):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(enc(x).flatten(1)).squeeze(-1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = ((head(enc(x).flatten(1)).squeeze(-1) > 0).float() == y).float().mean()
    assert accuracy > 0.97


def test_unknown_numeric_embedding_is_refused():
    with pytest.raises(ValueError, match="numeric_embedding"):
        SoftPromptEncoder(3, 2, 8, numeric_embedding="fourier")
