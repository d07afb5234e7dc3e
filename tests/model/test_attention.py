import torch
import torch.nn.functional as F

from grec.model.attention import MultiQueryAttention, ParallelBlock


def test_multi_query_attention_shares_one_key_value_head():
    attn = MultiQueryAttention(32, 4)
    assert attn.q.weight.shape == (32, 32)
    assert attn.kv.weight.shape == (2 * 8, 32)  # one key head and one value head of width 32/4
    assert attn(torch.randn(3, 7, 32)).shape == (3, 7, 32)


def test_masked_keys_do_not_change_the_output():
    torch.manual_seed(0)
    block = ParallelBlock(32, 4).eval()
    x = torch.randn(2, 6, 32)
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    y = block(x, mask)
    x2 = x.clone()
    x2[1, 3:] = torch.randn(3, 32)  # change only masked positions
    torch.testing.assert_close(block(x2, mask)[1, :3], y[1, :3])


def test_parallel_block_is_a_residual_of_attention_plus_mlp():
    torch.manual_seed(0)
    block = ParallelBlock(16, 2).eval()
    x = torch.randn(2, 4, 16)
    h = block.norm(x)
    torch.testing.assert_close(block(x), x + block.attn(h) + block.mlp(h))


def test_multi_query_attention_equals_torch_grouped_query_attention():
    """The stacked-heads matmuls compute what SDPA computes with one key/value head."""
    torch.manual_seed(0)
    attn = MultiQueryAttention(32, 4).eval()
    x = torch.randn(3, 7, 32)
    mask = torch.rand(3, 7) > 0.4
    mask[:, 0] = True  # every row keeps a key (the history encoder's start token)
    B, L, D = x.shape
    q = attn.q(x).view(B, L, 4, 8).transpose(1, 2)
    k, v = attn.kv(x).view(B, L, 1, 16).transpose(1, 2).chunk(2, dim=-1)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :], enable_gqa=True)
    torch.testing.assert_close(attn(x, mask), attn.out(expected.transpose(1, 2).reshape(B, L, D)), atol=1e-6, rtol=1e-5)
