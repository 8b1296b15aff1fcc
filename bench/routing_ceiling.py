#!/usr/bin/python3
"""How far other learners get on the routing outcome data, from the text alone.

A yardstick for the shipped complexity model (router/complexity_model.h), not
part of the product: it cross-validates a few standard text models from
scikit-learn on the train and validation splits that `hr-train` uses (the same
hash of the prompt; the test split is never read) and prints APGR and
saved_at_95, as `hr-train eval` defines them, per family: mean and standard
deviation over the folds. The shipped trainer itself (build/bin/hr-train, scored
by build/bin/hrctl) runs on the same folds first, when it has been built.

  apt-get install python3-sklearn      # Debian's scikit-learn, for this script only
  /usr/bin/python3 bench/routing_ceiling.py [--data ../shared/data/routing/dev.jsonl]

Takes about five minutes on two cores; prints each model's line when done.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

try:
    import numpy as np
    from scipy.sparse import hstack
    from scipy.stats import rankdata
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold
    from sklearn.neural_network import MLPRegressor
    from sklearn.preprocessing import normalize
except ImportError as e:
    sys.exit(f"{e}: this script needs Debian's python3-sklearn (apt-get install python3-sklearn) "
             "and Debian's /usr/bin/python3")

MASK = (1 << 64) - 1


def stable_hash(text):
    """router/text_features.h StableHash: 64-bit FNV-1a of the UTF-8 bytes."""
    h = 1469598103934665603
    for byte in text.encode():
        h = ((h ^ byte) * 1099511628211) & MASK
    return h


def apgr_and_saved(score, weak, strong):
    """APGR and saved_at_95 of ranking by `score` (higher: to the strong model)."""
    order = np.argsort(-score, kind="stable")
    n = len(weak)
    gained = np.concatenate([[0.0], np.cumsum(strong[order] - weak[order])])
    acc = (weak.sum() + gained) / n  # accuracy with the top k sent to the strong model
    w, s = weak.mean(), strong.mean()
    apgr = float(np.mean((acc[1:] - w) / (s - w)))
    k = int(np.argmax(acc >= 0.95 * s - 1e-12))
    return apgr, 1.0 - k / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/routing/dev.jsonl")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--smoothing", type=float, default=0.85,
                        help="subject smoothing of the label, as hr-train's --subject_smoothing")
    parser.add_argument("--hr_train", default="build/bin/hr-train",
                        help="the shipped trainer, run on the same folds with its default flags "
                             "and scored by the hrctl beside it (skipped when missing)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # the MLP's "not converged" after its fixed 30 epochs

    with open(args.data, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    records = [r for r in records if stable_hash(r["prompt"]) % 10 < 8]  # train + validation
    prompts = [r["prompt"] for r in records]
    weak = np.array([r["weak_correct"] for r in records], float)
    strong = np.array([r["strong_correct"] for r in records], float)
    source = np.array([r.get("source", "") for r in records])
    family = np.array([s.split("/")[0] for s in source])
    gain = ((strong == 1) & (weak == 0)).astype(float)  # the label hr-train learns
    print(f"{len(records)} prompts (train and validation splits), {args.folds}-fold cv", flush=True)

    def smoothed(idx, label=gain):
        """Each label mixed with its subject's mean label (GSM8K has no subjects)."""
        groups = collections.defaultdict(list)
        for i in idx:
            groups[source[i]].append(label[i])
        a = args.smoothing
        return np.array([label[i] if "/" not in source[i]
                         else (1 - a) * label[i] + a * np.mean(groups[source[i]]) for i in idx])

    def subject_rates(idx):
        groups = collections.defaultdict(list)
        for i in idx:
            groups[source[i]].append(gain[i])
        return {k: np.mean(v) for k, v in groups.items()}

    words = normalize(HashingVectorizer(ngram_range=(1, 2), n_features=2**18, norm=None,
                                        alternate_sign=False, token_pattern=r"(?u)\b\w+\b")
                      .fit_transform(prompts))
    chars = normalize(HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**18,
                                        norm=None, alternate_sign=False).fit_transform(prompts))
    words_chars = hstack([words, chars]).tocsr()
    # Fewer buckets for the slow learners (the MLP, the 57-way subject guess).
    small = normalize(HashingVectorizer(ngram_range=(1, 2), n_features=2**14, norm=None,
                                        alternate_sign=False, token_pattern=r"(?u)\b\w+\b")
                      .fit_transform(prompts))
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit_transform(prompts)

    def ridge(x, alpha, label=gain):
        return lambda tr, te: Ridge(alpha=alpha).fit(x[tr], smoothed(tr, label)).predict(x[te])

    def rank_average(*fits):
        # Each model's ranks, summed: an ensemble of differently built scores.
        return lambda tr, te: sum(rankdata(fit(tr, te)) for fit in fits)

    def logistic(x, c):
        # Soft labels as two weighted copies of each example.
        def fit(tr, te):
            y = smoothed(tr)
            xx = x[np.r_[tr, tr]]
            m = LogisticRegression(C=c, max_iter=500).fit(
                xx, np.r_[np.ones(len(tr)), np.zeros(len(tr))], sample_weight=np.r_[y, 1 - y])
            return m.decision_function(x[te])
        return fit

    def mlp(x, hidden, alpha):
        return lambda tr, te: MLPRegressor(hidden_layer_sizes=(hidden,), alpha=alpha, max_iter=30,
                                           random_state=0).fit(x[tr], smoothed(tr)).predict(x[te])

    def nearest(x, k):
        # The mean label of the k most similar training prompts (cosine), weighted
        # by similarity: difficulty learnt from look-alike questions.
        def fit(tr, te):
            y = smoothed(tr)
            sim = (x[te] @ x[tr].T).toarray()
            idx = np.argpartition(-sim, k, axis=1)[:, :k]
            w = np.take_along_axis(sim, idx, 1)
            return (w * y[idx]).sum(1) / (w.sum(1) + 1e-9)
        return fit

    def predicted_subject(x):
        # Guesses the subject from the text, then ranks by that subject's gain rate.
        def fit(tr, te):
            rates = subject_rates(tr)
            m = LogisticRegression(C=10.0, max_iter=300).fit(x[tr], source[tr])
            return m.predict_proba(x[te]) @ np.array([rates[c] for c in m.classes_])
        return fit

    def told_subject(tr, te):
        # Not a router: is told each prompt's subject (which the text need not say).
        rates = subject_rates(tr)
        fallback = np.mean(gain[tr])
        return np.array([rates.get(source[i], fallback) for i in te])

    workdir = tempfile.mkdtemp(prefix="routing_ceiling_")

    def shipped_trainer(tr, te):
        # hr-train train and score on the fold's own files (--split all: the whole file).
        for name, idx in (("train", tr), ("test", te)):
            with open(os.path.join(workdir, name + ".jsonl"), "w", encoding="utf-8") as f:
                for i in idx:
                    f.write(json.dumps(records[i]) + "\n")
        model = os.path.join(workdir, "model.pb")
        subprocess.run([args.hr_train, "train", "--data", os.path.join(workdir, "train.jsonl"),
                        "--out", model, "--split", "all"], check=True, capture_output=True)
        with open(os.path.join(workdir, "test.jsonl"), encoding="utf-8") as f:
            scored = subprocess.run([os.path.join(os.path.dirname(args.hr_train), "hrctl"), "score",
                                     "--complexity_model", model], stdin=f, check=True,
                                    capture_output=True, text=True).stdout
        return np.array([json.loads(line)["score"] for line in scored.splitlines()])

    models = []
    if os.path.exists(args.hr_train):
        models.append(("hr-train, shipped flags (the product)", shipped_trainer))
    models += [
        ("sklearn logistic, words and bigrams", logistic(words, 10.0)),
        ("ridge, words and bigrams", ridge(words, 3.0)),
        ("ridge, tf-idf words and bigrams", ridge(tfidf, 3.0)),
        ("ridge, words + character 3-5-grams", ridge(words_chars, 3.0)),
        ("MLP (32 hidden), words and bigrams, 2^14", mlp(small, 32, 0.1)),
        # Cloud minus local correctness (1, 0 or -1): a prompt only the local model
        # answers counts against the cloud.
        ("ridge, cloud minus local, words + chars", ridge(words_chars, 3.0, strong - weak)),
        ("100 nearest neighbours, tf-idf cosine", nearest(tfidf, 100)),
        ("subject guessed from the text, 2^14", predicted_subject(small)),
        ("rank average: ridge w+c, guessed subject", rank_average(ridge(words_chars, 3.0),
                                                                  predicted_subject(small))),
        ("reference: told the subject", told_subject),
    ]
    print(f"{'model':42s} {'all APGR':>13s} {'all saved':>10s} {'mmlu APGR':>10s} "
          f"{'mmlu saved':>10s} {'gsm8k APGR':>10s} {'gsm8k saved':>11s}", flush=True)
    for name, fit in models:
        start = time.time()
        per_fold = []
        for tr, te in KFold(args.folds, shuffle=True, random_state=1).split(prompts):
            score = fit(tr, te)
            row = []
            for fam in ("all", "mmlu", "gsm8k"):
                m = np.ones(len(te), bool) if fam == "all" else family[te] == fam
                row.extend(apgr_and_saved(score[m], weak[te][m], strong[te][m]))
            per_fold.append(row)
        mean, sd = np.mean(per_fold, axis=0), np.std(per_fold, axis=0)
        print(f"{name:42s} {mean[0]:.3f} ±{sd[0]:.3f} {mean[1]:10.3f} {mean[2]:10.3f} "
              f"{mean[3]:10.3f} {mean[4]:10.3f} {mean[5]:11.3f}   ({time.time() - start:.0f} s)",
              flush=True)


if __name__ == "__main__":
    main()
