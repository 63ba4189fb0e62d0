"""The behaviour targets (issues 22 and 23) on the shipped models, both halves of the suite, and weak models that must miss them
(nbs/06_behaviour.ipynb tests the suite itself)."""
import numpy as np
import pytest

from sentiment_nb.accurate import ACCURATE_MODEL
from sentiment_nb.behaviour import (MAX_PAIRED_SHIFT, PAIRED, behaviour_failures, behaviour_report, behaviour_suite, behaviour_targets,
                                    check_model, run_behaviour)
from sentiment_nb.data import LABELS

BOTH = behaviour_suite("both")


class ConstantPipeline:
    """A model that gives every tweet the same probabilities, with the interface `predict_pipeline` needs."""
    classes_ = np.array(LABELS)

    def __init__(self, label):
        self.row = np.where(self.classes_ == label, 0.8, 0.1)

    def predict_proba(self, texts):
        return np.tile(self.row, (len(texts), 1))


class LeaningPipeline(ConstantPipeline):
    """Neutral for every tweet, but a little more negative when it mentions a woman: the label never changes, the polarity does."""
    WOMEN = {"she", "her", "sister", "mom", "wife", "daughter", "girlfriend", "woman", "girl", "lady",
             "aunt", "grandma", "niece", "mother", "stepsister", "fiancée", "godmother", "granddaughter"}

    def __init__(self):
        super().__init__("neutral")

    def predict_proba(self, texts):
        lean = np.array([0.15 if self.WOMEN & set(t.lower().split()) else 0.0 for t in texts])
        moved = np.where(self.classes_ == "negative", 1.0, 0.0) - np.where(self.classes_ == "neutral", 1.0, 0.0)  # neutral 0.8 -> 0.65
        return super().predict_proba(texts) + np.outer(lean, moved)


def missed_targets(results) -> set:
    return {m.split(" (")[0] for m in behaviour_failures(results)}


# Targets the shipped models miss (issues 22 and 23 stay open for them; figures in each manifest's "behaviour" and in `make behaviour`).
# Every other target must hold: a model that misses one more fails, and one that meets a target listed here fails too,
# so the list is shortened the day a target is met.
MISSED_BY_BOTH = {
    "another person's opinion (development half)",
    "another person's opinion (sealed half)",
    "emoji: after negation (sealed half)",
    "emoji: alone (sealed half)",
    "emoji: sets the tone (sealed half)",
    "emoji: undercuts praise (sealed half)",
    "every capability (development half)",
    "every capability (sealed half)",
    "gap between the halves' mean failure rates (both)",
    "largest paired-sentence shift of p(positive) − p(negative) (development half)",
    "largest paired-sentence shift of p(positive) − p(negative) (sealed half)",
    "mean failure rate (sealed half)",
    "negation: across a clause (sealed half)",
    "negation: but-clause (sealed half)",
}
KNOWN_MISSES = {
    "fast": MISSED_BY_BOTH | {
        "negation: across a clause (development half)",
        "no content (sealed half)",
    },
    "accurate": MISSED_BY_BOTH | {
        "identity swaps that change the label (sealed half)",
    },
}


def target_and_half(missed: str) -> str:
    return missed.rsplit(": ", 1)[0]  # "negation: but-clause (sealed half): 21.0% > 20.0%" -> "negation: but-clause (sealed half)"


def assert_misses_only_the_known_targets(model_path, tier):
    results, report = check_model(model_path)
    missed = {target_and_half(m) for m in behaviour_failures(results)}
    assert missed == KNOWN_MISSES[tier], (f"newly missed: {sorted(missed - KNOWN_MISSES[tier])}; now met: {sorted(KNOWN_MISSES[tier] - missed)}"
                                          f"\n\n{report}")


def test_shipped_model_misses_only_the_known_behaviour_targets(served_model_path):
    assert_misses_only_the_known_targets(served_model_path, "fast")


@pytest.mark.slow
def test_accurate_tier_misses_only_the_known_behaviour_targets():
    assert_misses_only_the_known_targets(ACCURATE_MODEL, "accurate")


def test_a_model_that_always_says_negative_misses_the_targets():
    results = run_behaviour(ConstantPipeline("negative"), BOTH)
    missed = missed_targets(results)
    # a negated negative, the writer's praise over someone's complaint, an empty text, a happy emoji: all negative
    assert {"mean failure rate", "every capability", "negation: across a clause", "negation: but-clause", "another person's opinion",
            "no content", "emoji: alone", "emoji: sets the tone"} <= missed, missed
    # a constant model is perfectly invariant: the identity targets alone do not make a fair model
    assert not missed & {"identity swaps that change the label", "largest paired-sentence shift of p(positive) − p(negative)"}, missed
    assert behaviour_report(results).count("MISSED") == len(behaviour_failures(results))


def test_invariance_alone_cannot_pass_a_constant_model():
    # a constant model passes every INV test and every "not X" test: the MFT tests with one allowed label must catch it
    results = run_behaviour(ConstantPipeline("neutral"), BOTH)
    by_test = results.set_index(["half", "test"]).failure_rate
    for half in ("development", "sealed"):
        assert by_test[half, "change the religion"] == 0.0 and by_test[half, "negated neutral statement"] == 0.0
        assert by_test[half, "positive words"] == 1.0 and by_test[half, "used to negative, now positive"] == 1.0
        assert by_test[half, "texts with nothing to read"] == 0.0
    assert "every capability" in missed_targets(results)


def test_a_polarity_that_leans_on_gender_misses_the_paired_target_without_a_label_flip():
    results = run_behaviour(LeaningPipeline(), BOTH)
    targets = behaviour_targets(results).set_index(["target", "half"])
    for half in ("development", "sealed"):
        assert targets.met["identity swaps that change the label", half]  # every label stays neutral
        shift = targets.figure["largest paired-sentence shift of p(positive) − p(negative)", half]
        assert shift > MAX_PAIRED_SHIFT and not targets.met["largest paired-sentence shift of p(positive) − p(negative)", half], shift
    gender = results[(results.capability == PAIRED) & (results.test == "a person of another gender")]
    assert (gender.failures == 0).all() and (gender.mean_shift > 0).all()


def test_a_development_half_alone_does_not_meet_the_sealed_targets():
    results = run_behaviour(ConstantPipeline("neutral"))  # the default: the development half, what decisions may look at
    assert set(results.half) == {"development"}
    assert "mean failure rate (sealed half): not run" in behaviour_failures(results)
