"""Independent float64 NumPy references: dense n x n routes, straight from the definitions."""

import numpy as np


def cosine_gram(z):
  z = np.asarray(z, np.float64)
  zn = z / np.linalg.norm(z, axis=1, keepdims=True)
  return zn @ zn.T


def kernel_entropy(k):
  """-tr(K' log K') with K' = K / tr K, by a dense eigendecomposition."""
  k = np.asarray(k, np.float64)
  w = np.linalg.eigvalsh(k / np.trace(k))
  w = w[w > 0]
  return float(-(w * np.log(w)).sum())


def matrix_entropy(z):
  return kernel_entropy(cosine_gram(z))


def joint_entropy(z1, z2):
  return kernel_entropy(cosine_gram(z1) * cosine_gram(z2))


def mutual_information(z1, z2):
  return matrix_entropy(z1) + matrix_entropy(z2) - joint_entropy(z1, z2)


def mir(z1, z2):
  return mutual_information(z1, z2) / min(matrix_entropy(z1), matrix_entropy(z2))


def hdr(z1, z2):
  h1, h2 = matrix_entropy(z1), matrix_entropy(z2)
  return abs(h1 - h2) / max(h1, h2)


def simplex_etf(num_classes, dim, seed=0):
  """(C, dim) rows forming a simplex ETF: unit norm, pairwise cosine -1/(C-1)."""
  c = num_classes
  centred = np.eye(c) - np.ones((c, c)) / c
  basis, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(dim, c)))
  m = centred @ basis.T  # (C, dim), rows span a (C-1)-dim subspace
  return m / np.linalg.norm(m, axis=1, keepdims=True)


# --- neural collapse, float64, written the way the PyTorch reference code does it ---

def class_moments(h, y, num_classes):
  """Present classes' means (Cp, d), counts, global mean, Sigma_W, Papyan's Sigma_B, and
  the weighted Sigma_B, from all samples at once."""
  h = np.asarray(h, np.float64)
  present = [c for c in range(num_classes) if np.any(y == c)]
  means = np.stack([h[y == c].mean(0) for c in present])
  counts = np.array([np.sum(y == c) for c in present], np.float64)
  mu_g = h.mean(0)
  centred = h - means[np.searchsorted(present, y)]
  sigma_w = centred.T @ centred / len(h)
  m = means - mu_g
  sigma_b = m.T @ m / len(present)
  sigma_b_w = (m * (counts / len(h))[:, None]).T @ m
  return dict(present=present, means=means, counts=counts, mu_g=mu_g, m=m,
              sigma_w=sigma_w, sigma_b=sigma_b, sigma_b_w=sigma_b_w)


# float64 pseudo-inverse and rank cut-off, relative to the largest eigenvalue. NumPy's
# default (1e-15) keeps round-off of structurally null directions: of Sigma_B (centred
# means are dependent) on quantised inputs, and of Sigma_T at near collapse, where the
# within-class eigenvalues (1e-12 of the top) drown in eigensolver error leaking from the
# between-class ones. 1e-9 is far above float64 round-off and far below float32 data.
RCOND = 1e-9


def pinv(a):
  return np.linalg.pinv(a, rcond=RCOND, hermitian=True)


def rank(a, scale):
  return int(np.sum(np.linalg.eigvalsh(a) > RCOND * scale))


def nc1(h, y, num_classes):
  s = class_moments(h, y, num_classes)
  return np.trace(s["sigma_w"] @ pinv(s["sigma_b"])) / len(s["present"])


def cdnv(h, y, num_classes):
  s = class_moments(h, y, num_classes)
  h = np.asarray(h, np.float64)
  var = np.array([np.mean(np.sum((h[y == c] - mu) ** 2, 1))
                  for c, mu in zip(s["present"], s["means"], strict=True)])
  mu = s["means"]
  vals = [(var[i] + var[i + 1:]) / (2 * np.sum((mu[i] - mu[i + 1:]) ** 2, 1))
          for i in range(len(var) - 1)]  # the pairs i < j, row by row
  return np.mean(np.concatenate(vals))


def vci(h, y, num_classes):
  s = class_moments(h, y, num_classes)
  h = np.asarray(h, np.float64)
  sigma_t = np.cov(h.T, bias=True)
  top = np.linalg.eigvalsh(sigma_t)[-1]
  return 1 - np.trace(pinv(sigma_t) @ s["sigma_b_w"]) / rank(s["sigma_b_w"], top)


def _cosines_off_diagonal(x):
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  cos = xn @ xn.T
  return cos[~np.eye(len(x), dtype=bool)]


def nc2(h, y, num_classes, head):
  s = class_moments(h, y, num_classes)
  out = {}
  for name, x in (("means", s["m"]), ("head", np.asarray(head, np.float64)[s["present"]])):
    norms = np.linalg.norm(x, axis=1)
    cos = _cosines_off_diagonal(x)
    out[f"equinorm_{name}"] = norms.std() / norms.mean()
    out[f"equiangular_{name}"] = cos.std()
    out[f"maxangle_{name}"] = np.mean(np.abs(cos + 1 / (len(x) - 1)))
  return out


def nc3(h, y, num_classes, head):
  s = class_moments(h, y, num_classes)
  w = np.asarray(head, np.float64)[s["present"]]
  return np.sum((w / np.linalg.norm(w) - s["m"] / np.linalg.norm(s["m"])) ** 2)


def nc4(h, y, num_classes, head, bias, centres=None):
  """Disagreement of argmax(W h + b) with the nearest class mean: of ``centres`` (h_c, y_c),
  e.g. the train split's features, or by default of (h, y) itself."""
  s = class_moments(*(centres or (h, y)), num_classes)
  h = np.asarray(h, np.float64)
  network = np.argmax(h @ np.asarray(head, np.float64).T + bias, 1)
  dist = ((h[:, None, :] - s["means"][None]) ** 2).sum(-1)
  nearest = np.asarray(s["present"])[np.argmin(dist, 1)]
  return np.mean(network != nearest)


def gnc2(h, y, num_classes):
  """Mean over pairs of log(1 / ||u_i - u_j||), u the normalised centred means."""
  m = class_moments(h, y, num_classes)["m"]
  u = m / np.linalg.norm(m, axis=1, keepdims=True)
  vals = [-np.log(np.linalg.norm(u[i] - u[i + 1:], axis=1)) for i in range(len(u) - 1)]
  return np.mean(np.concatenate(vals))  # the pairs i < j, row by row


def unc3(h, y, num_classes, head):
  """Standard deviation over classes of cos(w_c, M_c)."""
  s = class_moments(h, y, num_classes)
  w = np.asarray(head, np.float64)[s["present"]]
  cos = np.sum(w * s["m"], 1) / (np.linalg.norm(w, axis=1) * np.linalg.norm(s["m"], axis=1))
  return cos.std()


def nc5(h, y, num_classes, ood):
  """Mean over classes of |cos(M_c, mean(ood) - mu_G)|."""
  s = class_moments(h, y, num_classes)
  g = np.asarray(ood, np.float64).mean(0) - s["mu_g"]
  cos = s["m"] @ g / (np.linalg.norm(s["m"], axis=1) * np.linalg.norm(g))
  return np.mean(np.abs(cos))


def nci_score(h, y, num_classes, head, bias, features, alpha):
  """pytorch-ood's NCI: -(w_c . z) / ||z|| - alpha ||h||_1, z = h - mu_G, c predicted."""
  mu_g = np.asarray(h, np.float64).mean(0)
  f = np.asarray(features, np.float64)
  head = np.asarray(head, np.float64)
  predicted = np.argmax(f @ head.T + bias, 1)
  z = f - mu_g
  return -np.sum(head[predicted] * z, 1) / np.linalg.norm(z, axis=1) - alpha * np.abs(f).sum(1)


def effective_rank(h):
  sv = np.linalg.svd(np.asarray(h, np.float64), compute_uv=False)
  p = sv / sv.sum()
  p = p[p > 0]
  return np.exp(-(p * np.log(p)).sum())


# --- test data ---

def features(kind, n, d, seed=0):
  rng = np.random.default_rng(seed)
  if kind == "random":
    return rng.normal(size=(n, d))
  if kind == "low_rank":
    return rng.normal(size=(n, 3)) @ rng.normal(size=(3, d)) + 1e-2 * rng.normal(size=(n, d))
  if kind == "collapsed":  # 4 tight clusters
    means = 5 * rng.normal(size=(4, d))
    return means[np.arange(n) % 4] + 1e-2 * rng.normal(size=(n, d))
  raise ValueError(kind)


def info_regularizer(f, head, labels, lam, lam2):
  """-lam I(G(f); G(w_y)) + lam2 |H(G(f)) - H(G(w_y))| on the given rows."""
  w = np.asarray(head, np.float64)[labels]
  h_f, h_w = matrix_entropy(f), matrix_entropy(w)
  return -lam * (h_f + h_w - joint_entropy(f, w)) + lam2 * abs(h_f - h_w)


def cma_loss(f, labels, embeddings):
  """Mean over present classes of H(G([f of class c; t_c])) / log(n_c + 1)."""
  f = np.asarray(f, np.float64)
  scores = []
  for c in np.unique(labels):
    group = np.vstack([f[labels == c], np.asarray(embeddings, np.float64)[c]])
    scores.append(matrix_entropy(group) / np.log(len(group)))
  return float(np.mean(scores))
