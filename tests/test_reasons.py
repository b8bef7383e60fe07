"""Reasons a person can check: a model tag names the inputs that pushed the user's score, with their values.

A hand-built population whose purchases follow carts in the last day (views are noise), folded through
the real tiles and profiles; each candidate (logistic regression, boosted trees, the network) fitted on it
by its own library; then a hand-built user whose only signal is three carts in the last day.
"""
from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from pyspark.sql import functions as F

from jobs.model.challengers import NETWORK, Scorer, fit_logistic, fit_trees
from jobs.model.inputs import TEXT_DIM, TEXT_VECTORS, InputSpec, model_inputs
from jobs.model.network import ModelBundle, NetworkShape
from jobs.model.stages import model_labels, model_scores
from jobs.model.train import TrainSettings, final_state, train_loop
from schemas.events import BROWSE, TRANSACTIONS
from schemas.items import ITEMS
from schemas.social import SOCIAL
from schemas.users import USERS
from tests.helpers import fold_inputs, padded, ts

AS_OF = ts(31, 0)
SHOPPER = "three-carts-yesterday"


def population(spark, users: int = 240):
    """Browse events at random hours: views on random days of the last week for everyone, and carts on a random
    earlier day for about half (noise); 1-3 carts on the last day for about a third. Purchases in the horizon:
    85% of those who carted on the last day, 10% of the rest."""
    rng = np.random.default_rng(11)
    events, bought = [], {}

    def event(uid: str, item: int, kind: str, day: int) -> tuple:
        when = ts(day, int(rng.integers(0, 24)), int(rng.integers(0, 60)))
        return (uid, f"i{item}", kind, when, 1000, None)  # no session ids: sessions come from the gaps

    for u in range(users):
        uid = f"u{u:03d}"
        events += [event(uid, int(rng.integers(1, 9)), "view", int(rng.integers(24, 31)))
                   for _ in range(rng.integers(1, 12))]
        if rng.random() < 0.5:
            events += [event(uid, int(rng.integers(1, 9)), "cart", int(rng.integers(24, 30)))
                       for _ in range(rng.integers(1, 4))]
        carts = int(rng.integers(1, 4)) if rng.random() < 0.35 else 0
        events += [event(uid, c + 1, "cart", 30) for c in range(carts)]
        bought[uid] = float(rng.random() < (0.85 if carts else 0.10))
    events += [(SHOPPER, f"i{c + 1}", "cart", ts(30, 14 + c), 1000, None) for c in range(3)]
    return events, bought


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    from conf import load_config
    from jobs.features.state_profiles import profiles_from_state

    cfg = load_config(overrides=["features.short_windows=[1,3,7]", "model.propensity_tag_min=0.01"])
    events, bought = population(spark)
    ids = sorted({e[0] for e in events})
    clean = {"users": padded(spark, [(u, ts(1), None, None, None, None, None, None) for u in ids], USERS),
             "items": padded(spark, [(f"i{i}", f"t{i}", "toys", "b", 1.0) for i in range(1, 9)], ITEMS),
             "browse": spark.createDataFrame([(*e, e[3].date()) for e in events], BROWSE),
             "transactions": spark.createDataFrame([], TRANSACTIONS),
             "social": spark.createDataFrame([], SOCIAL)}
    profiles = profiles_from_state(cfg, AS_OF, AS_OF, {"browse"})(fold_inputs(cfg, AS_OF, clean))
    profiles = profiles.localCheckpoint(eager=True)
    spec = InputSpec(tuple(cfg.features.rfm_windows), (), cfg.tags.active_window_days, 0,
                     tuple(cfg.features.short_windows))
    labels = spark.createDataFrame(list(bought.items()), "user_id string, bought double")
    train = (profiles.transform(model_inputs(spec)).join(labels, "user_id")
             .withColumns({"churned": F.lit(0.0), "holdout": F.lit(False), "spend_tier": F.lit(0),
                           "categories": F.array().cast("array<float>")}).localCheckpoint(eager=True))
    return cfg, spec, profiles, train, tmp_path_factory.mktemp("reasons")


def network_bundle(spec: InputSpec, train, directory) -> ModelBundle:
    """The network, trained on the population in this process (one rank) by the job's own training loop."""
    files = directory / "snapshot"
    train.select("user_id", "behaviour", "text", "interest", "holdout", "bought", "churned", "categories",
                 "spend_tier").coalesce(1).write.mode("overwrite").parquet(str(files))
    shape = NetworkShape(n_behaviour=len(spec.names()), text_dim=TEXT_DIM, n_categories=0, embedding_dim=8,
                         hidden_dim=32, n_text_vectors=len(TEXT_VECTORS))
    settings = TrainSettings(tuple(str(p) for p in files.glob("*.parquet")), str(directory / "checkpoints"), shape,
                             epochs=60, batch_size=64, learning_rate=0.01, weight_decay=0.0, seed=3)
    train_loop(settings)
    return ModelBundle(shape, final_state(settings)["model"], spec, "reasons")


@pytest.mark.parametrize("method", ["mllib", "gbt", NETWORK])
def test_three_carts_in_the_last_day_are_named_in_the_reason(world, method):
    cfg, spec, profiles, train, directory = world
    network = network_bundle(spec, train, directory / method) if method == NETWORK else \
        network_bundle(spec, train.limit(50), directory / method)
    fitted = {"mllib": lambda: fit_logistic(train, "bought"), "gbt": lambda: fit_trees(train, "bought", seed=3),
              NETWORK: lambda: Scorer(NETWORK)}[method]()
    bundle = replace(network, scorers={"propensity": fitted})
    shopper = profiles.filter(F.col("user_id") == SHOPPER)
    scored = shopper.withColumn("segment_id", F.lit(None).cast("int")).transform(model_scores(bundle, 3))
    row = scored.first()
    assert row.carts_1d == 3 and row.views == 0 and row.frequency is None  # carts are the shopper's only signal
    assert any("cart" in d for d in row.propensity_drivers), row.propensity_drivers
    tag = [t for t in scored.transform(model_labels(cfg, {})).collect() if t.tag == "likely_buyer"][0]
    # "likely to buy in 7 days (p=0.83): carts_1d=3, ...": the carts, with their value.
    assert re.search(r"\bcarts(_\d+d)?=3\b", tag.reason), tag.reason
    assert tag.reason.startswith(f"likely to buy in {cfg.model.horizon_days} days (p={row.purchase_propensity:.2f}): ")


def test_every_reason_names_an_input_the_profile_holds(world):
    """The driver names are behaviour inputs, and a scalar's shown value is the profile's own."""
    cfg, spec, profiles, train, directory = world
    bundle = replace(network_bundle(spec, train.limit(50), directory / "names"),
                     scorers={"propensity": fit_logistic(train, "bought")})
    scored = profiles.transform(model_scores(bundle, 3)).collect()
    scalars = set(spec.scalar_columns())
    checked = 0
    for row in scored:
        for driver in row.propensity_drivers:
            name, _, value = driver.partition("=")
            if name in scalars and name in row.asDict() and row[name] is not None:
                # Shown to three significant digits.
                assert float(value) == pytest.approx(float(row[name]), rel=5e-3, abs=1e-3), driver
                checked += 1
    assert checked > len(scored)  # most users' reasons quote a profile column


def test_days_of_carts_are_counted_in_local_days(world):
    cfg, spec, profiles, *_ = world
    shopper = profiles.filter(F.col("user_id") == SHOPPER).first()
    assert shopper.days_since_last_cart == pytest.approx((AS_OF - ts(30, 16)) / timedelta(days=1))


def test_a_published_stack_weighs_z_scores_over_the_training_rows_and_names_the_carts(world):
    """The stack's parts carry the z-score of their margins over the training rows (what its weights were
    fitted on, one refit earlier), and its reason is its parts' pushes: the carts again."""
    from jobs.model.challengers import fit_rfm_rule
    from jobs.model.selection import Candidates, Choice, published_bundle

    cfg, spec, profiles, train, directory = world
    network = network_bundle(spec, train.limit(50), directory / "stack")
    parts = {"mllib": fit_logistic(train, "bought"), "rfm_rule": fit_rfm_rule(train, spec, "propensity")}
    candidates = Candidates(network, {"propensity": parts}, train)
    choice = Choice({"propensity": "stack", "churn": NETWORK}, {}, {},
                    {"propensity": (("mllib", "rfm_rule"), np.array([1.5, 0.5]), -0.2)})
    stack = published_bundle(candidates, choice).scorers["propensity"]
    behaviour = np.array([r.behaviour for r in train.select("behaviour").collect()], dtype=np.float64)
    for part in stack.describe()["parts"]:
        margins = parts[part["method"]].margins(behaviour, None)
        # A margin with no spread (the rule here: nobody has an order) tells no one apart: weighed as 0.
        expected = (1 / margins.std(), -margins.mean() / margins.std()) if margins.std() > 0 else (0.0, 0.0)
        assert tuple(part["calibration"]) == pytest.approx(expected, rel=1e-6, abs=1e-9), part
    scored = profiles.filter(F.col("user_id") == SHOPPER).withColumn("segment_id", F.lit(None).cast("int")) \
        .transform(model_scores(replace(network, scorers={"propensity": stack}), 3))
    tag = [t for t in scored.transform(model_labels(cfg, {})).collect() if t.tag == "likely_buyer"][0]
    assert re.search(r"\bcarts(_\d+d)?=3\b", tag.reason), tag.reason


def test_the_networks_attributions_are_captums_over_its_plain_forward():
    """The scorer's integrated gradients hold the text and interest part of the first layer (``from_behaviour``);
    they must be Captum's own attributions over ``forward`` with every input passed along the path."""
    import torch
    from captum.attr import IntegratedGradients

    from jobs.model.network import UserModel
    from jobs.model.score import IG_STEPS, _integrated_gradients

    torch.manual_seed(5)
    network = UserModel(NetworkShape(n_behaviour=6, text_dim=4, n_categories=3, embedding_dim=5, hidden_dim=7,
                                     n_text_vectors=2, image_dim=2)).double().eval()
    network.set_standardisation(torch.rand(6, dtype=torch.float64), torch.rand(6, dtype=torch.float64) + 0.5)
    behaviour, text, interest = (torch.randn(9, width, dtype=torch.float64) for width in (6, 8, 6))
    for head in (1, 2):
        expected = IntegratedGradients(lambda b, t, i: network(b, t, i)[head]).attribute(
            behaviour, baselines=network.mean.expand_as(behaviour), additional_forward_args=(text, interest),
            n_steps=IG_STEPS).detach().numpy()
        assert np.abs(expected).max() > 1e-3  # the heads move with the behaviour: a real comparison
        np.testing.assert_allclose(_integrated_gradients(network, head, behaviour, text, interest), expected,
                                   rtol=1e-9, atol=1e-12)
