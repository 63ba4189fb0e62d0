"""Issue 10's behaviour targets on the shipped model, and a weak model that must miss them (nbs/06_behaviour.ipynb tests the suite itself)."""
import numpy as np

from sentiment_nb.behaviour import (MAX_CAPABILITY_FAILURE, behaviour_failures, behaviour_report, check_model,
                                    negation_capabilities, run_behaviour)
from sentiment_nb.data import LABELS


class ConstantPipeline:
    """A model that gives every tweet the same label, with the interface `predict_pipeline` needs."""
    classes_ = np.array(LABELS)

    def __init__(self, label):
        self.row = np.where(self.classes_ == label, 0.8, 0.1)

    def predict_proba(self, texts):
        return np.tile(self.row, (len(texts), 1))


def test_shipped_model_meets_the_behaviour_targets(served_model_path):
    results, report = check_model(served_model_path)
    missed = behaviour_failures(results)
    assert not missed, "behaviour targets missed:\n  " + "\n  ".join(missed) + f"\n\n{report}"


def test_a_model_that_always_says_negative_misses_the_targets():
    results = run_behaviour(ConstantPipeline("negative"))
    missed = behaviour_failures(results)
    assert any(m.startswith("mean failure rate") for m in missed), missed
    # it reads every negated neutral statement and every "not bad :)" as negative
    for capability in ("negation: neutral", "negation: emoticon"):
        assert any(f"negation capability {capability!r}" in m for m in missed), (capability, missed)
    assert behaviour_report(results).count("MISSED") == 2 + len(negation_capabilities(results)) - 1  # all but "negation: positive"


def test_invariance_alone_cannot_pass_a_constant_model():
    # a constant model passes every INV test and every "not X" test: the MFT tests with one allowed label must catch it
    results = run_behaviour(ConstantPipeline("neutral"))
    by_test = results.set_index("test").failure_rate
    assert by_test["change the religion"] == 0.0 and by_test["negated neutral statement"] == 0.0
    assert by_test["positive words"] == 1.0 and by_test["used to negative, now positive"] == 1.0
    assert any(f"> {MAX_CAPABILITY_FAILURE:.0%}" in m for m in behaviour_failures(results))
