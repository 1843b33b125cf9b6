"""A small network memorises a tiny training set and generalises from a large one (sections 12-13).

The paper's case (K = 2, n = 48, d = 4, N_k = 4 vs 256, 3 x 256 MLP) takes minutes on this CPU; the
same contrast at n = 8, d = 2, N_k = 2 vs 64 trains both members as one ensemble in seconds.
"""


from molrg.analysis.scores import reproducibility, sample_scores
from molrg.data.synthetic import make_molrg
from molrg.neural import NeuralConfig, NeuralDiffusion, train_ensemble
from molrg.sampling.samplers import sample

CFG = NeuralConfig(width=64, depth=2, emb_dim=16, steps=600, batch_size=128, lr=1e-2)


def test_tiny_training_set_is_memorised_and_large_one_generalises():
    small = make_molrg(8, [2, 2], samples_per_component=2, seed=0)
    large = make_molrg(8, [2, 2], samples_per_component=64, seed=0)
    res = train_ensemble(CFG, [small.X, large.X], [0, 1])
    scores = []
    for b, data in enumerate([small, large]):
        S = sample(res.networks.member_denoiser(b), 200, 8, seed=0)
        scores.append(sample_scores(S, data.X, data.bases))
    mem_small = scores[0]["memorisation"]
    mem_large = scores[1]["memorisation"]
    assert mem_small["memorised_fraction"] >= 0.6, scores
    assert mem_small["generalisation_score"] <= 0.3, scores
    assert mem_large["memorised_fraction"] <= 0.15, scores
    assert mem_large["generalisation_score"] >= 0.4, scores
    assert scores[1]["true"]["on_support_fraction"] >= 0.4, scores


def test_halves_reproduce_each_other_only_with_enough_data():
    out = {}
    for nk in (2, 64):
        data = make_molrg(8, [2, 2], samples_per_component=2 * nk, seed=3)  # each half has ~N_k per component
        model = NeuralDiffusion(CFG, split="halves", steps=400).fit(data.X)
        a, b = model.sample_members(100, seed=1)
        out[nk] = reproducibility(a, b)
    assert out[64]["cosine_median"] > out[2]["cosine_median"] + 0.1, out
    assert out[64]["reproducible_fraction"] >= 0.5, out
