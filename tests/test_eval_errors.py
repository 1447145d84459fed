"""Bad input to `edgesmith eval`: each gives a clear error naming the problem."""

from __future__ import annotations

import json

import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.plugins.evaluation.evaluate import build_task_sets, evaluate
from edgesmith.plugins.evaluation.options import EvalOptions
from edgesmith.plugins.evaluation.tasks_file import DatasetError, read_tasks_file

NAMES = ["extraction", "python", "reasoning", "toolcall"]


def test_unknown_environment_lists_the_registered_ones():
    with pytest.raises(ConfigError) as info:
        build_task_sets(EvalOptions(envs=["toolcall", "chess"]))
    message = str(info.value)
    assert "chess" in message and "envs" in message
    assert all(name in message for name in NAMES)


def test_empty_evaluation_sets_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="evaluation set would be empty"):
        EvalOptions(envs=[])
    with pytest.raises(ConfigError, match="n_prompts"):
        EvalOptions(n_prompts=0)
    with pytest.raises(ConfigError, match="greedy=false"):
        EvalOptions(greedy=False, samples=0)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="holds no tasks"):
        read_tasks_file(empty, NAMES)


@pytest.mark.parametrize("row, problem", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"env": "golf", "messages": [{"role": "user", "content": "hi"}], "reference": 1}', "unknown or missing 'env'"),
    ('{"env": "reasoning", "messages": [], "reference": 1}', "'messages' must be a non-empty list"),
    ('{"env": "reasoning", "messages": [{"role": "robot", "content": "hi"}], "reference": 1}', "messages[0]"),
    ('{"env": "reasoning", "messages": [{"role": "user", "content": "hi"}]}', "missing 'reference'"),
    ('{"env": "toolcall", "messages": [{"role": "user", "content": "hi"}], "reference": 1, "tools": "x"}', "'tools'"),
])
def test_malformed_dataset_rows_name_the_line_and_the_problem(tmp_path, row, problem):
    good = {"env": "reasoning", "messages": [{"role": "user", "content": "2+2?"}],
            "reference": {"kind": "arithmetic", "answer": 4}}
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps(good) + "\n" + row + "\n")
    with pytest.raises(DatasetError) as info:
        read_tasks_file(path, NAMES)
    assert f"{path}, line 2" in str(info.value) and problem in str(info.value)


def test_a_good_tasks_file_is_evaluated(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(json.dumps({"env": "reasoning", "id": "q1", "messages": [{"role": "user", "content": "2+2?"}],
                                "reference": {"kind": "arithmetic", "answer": 4}}) + "\n")
    sets = build_task_sets(EvalOptions(tasks_file=str(path)))
    env, tasks = sets["reasoning"]
    assert [t.id for t in tasks] == ["q1"]
    assert env.verify(tasks[0], "Final answer: 4").correct


def test_model_dir_without_chat_template(tmp_path):
    from tiny_chat_models import random_model, train_test_tokenizer

    tokenizer = train_test_tokenizer(tmp_path / "tok")
    tokenizer.chat_template = None
    model_dir = tmp_path / "model"
    random_model(model_dir, tokenizer)
    (model_dir / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="chat template"):
        evaluate(EvalOptions(envs=["reasoning"], n_prompts=1, samples=0), model_dir)


def test_model_path_that_is_not_a_model_dir(tmp_path):
    with pytest.raises(ConfigError, match="config.json"):
        evaluate(EvalOptions(envs=["reasoning"], n_prompts=1), tmp_path)


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    from edgesmith.core.cli import main

    assert main(["eval", f"model_path={tmp_path}", "envs=[chess]", f"hydra.run.dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "chess" in err and "toolcall" in err and "Traceback" not in err
    assert main(["eval", "n_prompts=2", f"hydra.run.dir={tmp_path}"]) == 1
    assert "model_path" in capsys.readouterr().err


def test_loop_detector_thresholds_are_typed_options(tmp_path, capsys):
    from edgesmith.core.cli import main

    # a typo or a bad threshold is refused before the model is loaded, naming the key as typed
    assert main(["eval", f"model_path={tmp_path}", "+loop_detector.min_spann=3", f"hydra.run.dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "invalid config value loop_detector.min_spann=3: accepted options of loop_detector: " in err
    assert "min_span" in err.split("accepted")[1]
    assert main(["eval", f"model_path={tmp_path}", "loop_detector.ngram_threshold=1.5",
                 f"hydra.run.dir={tmp_path}"]) == 1
    assert "invalid config value loop_detector.ngram_threshold=1.5: accepted a number in (0, 1]" in capsys.readouterr().err
    # the eval stage's section names its own key; the loop judge shares the same thresholds
    from edgesmith.core.options import build_options
    from edgesmith.plugins.judges.loop import LoopJudgeOptions
    from edgesmith.plugins.loops.detector import LoopDetectorOptions

    with pytest.raises(ConfigError, match=r"^invalid config value eval.loop_detector.min_repeats=1: accepted an "
                                          r"integer >= 2$"):
        build_options(EvalOptions, {"loop_detector": {"min_repeats": 1}}, "eval")
    assert build_options(EvalOptions, {"loop_detector": {"min_span": 12}}, "eval").loop_detector.min_span == 12
    assert issubclass(LoopJudgeOptions, LoopDetectorOptions)
