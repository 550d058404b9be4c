import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from ssl_robustness.evaluation.knn import knn_scores
from ssl_robustness.evaluation.linear_probe import linear_probe


def _blobs(n, d, c, seed, spread=2.5):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d))
    y = rng.integers(0, c, n)
    x = centers[y] * spread / np.sqrt(d) * 3 + rng.normal(size=(n, d))
    return x.astype(np.float32), y


def test_knn_matches_brute_force():
    rng = np.random.default_rng(0)
    train, labels = rng.normal(size=(50, 6)), rng.integers(0, 4, 50)
    test = rng.normal(size=(7, 6))
    got = knn_scores(train, labels, test, k=5, temperature=0.1, num_classes=4, chunk=3)
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    for i, q in enumerate(test):
        sims = tn @ (q / np.linalg.norm(q))
        top = np.argsort(-sims)[:5]
        expected = np.zeros(4)
        for j in top:  # each row scaled by its nearest neighbour's weight (no overflow)
            expected[labels[j]] += np.exp((sims[j] - sims[top[0]]) / 0.1)
        assert np.allclose(got[i], expected, rtol=1e-4)


def test_linear_probe_matches_sklearn_logistic_regression():
    x, y = _blobs(1500, 32, 8, seed=1, spread=0.6)
    xtr, ytr, xva, yva, xte, yte = x[:900], y[:900], x[900:1200], y[900:1200], x[1200:], y[1200:]
    grid_c = [0.01, 0.1, 1.0]
    mean, std = xtr.mean(0), xtr.std(0)
    best, best_val = None, -1
    for c in grid_c:  # scikit-learn, same standardisation, C chosen on the same val split
        clf = LogisticRegression(C=c, max_iter=2000).fit((xtr - mean) / std, ytr)
        val = clf.score((xva - mean) / std, yva)
        if val > best_val:
            best, best_val = clf, val
    sk_acc = best.score((xte - mean) / std, yte)
    ours, curve = linear_probe(xtr, ytr, xva, yva, 8, [1 / (c * len(xtr)) for c in grid_c])
    our_acc = float((ours.scores(xte).argmax(1) == yte).mean())
    assert len(curve) == 3
    assert abs(our_acc - sk_acc) <= 0.005, (our_acc, sk_acc)


def test_linear_probe_solution_matches_sklearn_coefficients():
    x, y = _blobs(400, 10, 3, seed=2, spread=0.5)
    l2 = 1e-2
    model, _ = linear_probe(x, y, x[:0], y[:0], 3, [l2], max_iter=500)
    z = (x - x.mean(0)) / x.std(0, ddof=1)
    clf = LogisticRegression(C=1 / (l2 * len(x)), max_iter=5000, tol=1e-10).fit(z, y)
    # multinomial logits are defined up to a shared shift: compare centred weights
    ours = model.weight.numpy() - model.weight.numpy().mean(0)
    theirs = clf.coef_ - clf.coef_.mean(0)
    assert np.allclose(ours, theirs, atol=2e-3)
    assert torch.is_tensor(model.mean)


def test_probe_picks_regularisation_on_validation():
    x, y = _blobs(600, 50, 5, seed=3, spread=0.3)
    _, curve = linear_probe(x[:100], y[:100], x[100:], y[100:], 5, [10.0, 1e-3])
    assert [c["l2"] for c in curve] == [10.0, 1e-3]
    assert all(0 <= c["val_balanced_accuracy"] <= 1 for c in curve)
