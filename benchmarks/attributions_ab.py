"""The network's integrated gradients for one head, two ways, in one process: Captum over ``UserModel.forward`` with
every input passed along the path (what scoring did before), and Captum over ``UserModel.from_behaviour`` with the
text and interest inputs' part of the first layer computed once (``jobs.model.score._integrated_gradients``).

    python benchmarks/attributions_ab.py          # about a minute

The demo's network (hidden 128, embedding 64, two 384-float text vectors and a 384-float interest vector), with
random weights and inputs, one torch thread (a Spark task's share on this machine), a batch of ``users`` rows (an
Arrow batch of the scoring UDF). Rounds alternate which side goes first; the attributions of the two must agree.
Writes benchmarks/results/attributions_ab.json.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_file import write_result  # noqa: E402  (after the path)
from benchmarks.revision_ab import head_revision  # noqa: E402
from jobs.model.network import NetworkShape, UserModel  # noqa: E402
from jobs.model.score import IG_STEPS, _integrated_gradients  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "attributions_ab.json"


def main(users: int = 10_000, behaviour: int = 70, rounds: int = 3, out: Path = RESULTS) -> None:
    from captum.attr import IntegratedGradients

    torch.set_num_threads(1)
    torch.manual_seed(0)
    network = UserModel(NetworkShape(n_behaviour=behaviour, text_dim=384, n_categories=20, embedding_dim=64,
                                     hidden_dim=128, n_text_vectors=2)).double().eval()
    inputs = [torch.randn(users, width, dtype=torch.float64) for width in (behaviour, 768, 384)]

    def whole_path() -> np.ndarray:
        explain = IntegratedGradients(lambda b, t, i: network(b, t, i)[1])
        return explain.attribute(inputs[0], baselines=network.mean.expand_as(inputs[0]),
                                 additional_forward_args=tuple(inputs[1:]), n_steps=IG_STEPS,
                                 internal_batch_size=4096).detach().numpy()

    sides = {"whole_path": whole_path, "held_inputs": lambda: _integrated_gradients(network, 1, *inputs)}
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    results = {}
    for n in range(rounds):
        for side in (list(sides) if n % 2 == 0 else list(sides)[::-1]):
            started = time.perf_counter()
            results[side] = sides[side]()
            seconds[side].append(round(time.perf_counter() - started, 3))
            print(side, seconds[side][-1], flush=True)
    median = {side: statistics.median(s) for side, s in seconds.items()}
    write_result(out, {
        "revision": f"{head_revision()} (the checkout, with any uncommitted changes)",
        "users": users, "behaviour_inputs": behaviour, "steps": IG_STEPS,
        "seconds_per_round": seconds, "median_s": median,
        "held_over_whole": round(median["held_inputs"] / median["whole_path"], 3),
        "largest_difference": float(np.abs(results["held_inputs"] - results["whole_path"]).max()),
        "largest_attribution": float(np.abs(results["whole_path"]).max()),
        "conditions": "one process, one torch thread, float64 (as scoring runs); rounds alternate which side goes "
                      "first",
    })


if __name__ == "__main__":
    typer.run(main)
