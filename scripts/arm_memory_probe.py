"""Does a model remember which arm of the search task it already tried?

For held-out search tasks with a dead end, the model reads its own trace up to the second
"Try <centre>>" and we read the probability it gives the first digit of the arm it has
already tried. A model that remembers puts ~0 there; one that does not, about a quarter
(four arms; more when two arms share a first digit).

    .venv/bin/python scripts/arm_memory_probe.py outputs/<run>/sft/model [more model dirs]
"""

from __future__ import annotations

import sys

import torch

from edgesmith.plugins.environments.reasoning import ReasoningEnvironment
from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
from edgesmith.plugins.stages.preferences import prompt_text


def tried_arm_probability(model_dir: str, n_tasks: int = 80) -> tuple[float, int]:
    model, tokenizer = load_model_and_tokenizer(model_dir)
    model.eval()
    probabilities = []
    for task in ReasoningEnvironment({}, seed=0).tasks("eval", n_tasks):
        lines = task.solution.split("\n")
        if len(lines) < 4:  # the first arm tried was the right one: no dead end
            continue
        walk = lines[1].split()[1]  # "15>66>18:"
        centre, tried = walk.split(">")[0], walk.split(">")[1]
        text = prompt_text(tokenizer, task) + f"{lines[0]}\n{lines[1]}\nTry {centre}>"
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            next_token = model(ids).logits[0, -1].softmax(-1)
        probabilities.append(next_token[tokenizer(tried[0], add_special_tokens=False)["input_ids"][0]].item())
    return sum(probabilities) / len(probabilities), len(probabilities)


if __name__ == "__main__":
    torch.set_num_threads(1)
    for path in sys.argv[1:]:
        mean, n = tried_arm_probability(path)
        print(f"{path}: P(first digit of the arm already tried) = {mean:.2f} over {n} tasks")
