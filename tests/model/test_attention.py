import torch

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
