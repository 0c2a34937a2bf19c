"""Flip metrics on hand-made predictions where every category count is known, the vqa-flips CLI, and clear errors
for malformed result, annotation and mapping files."""

import json
import math

import pytest

from paperzoo.causal_vqa import Pair, flip_metrics, vqa_accuracy
from paperzoo.causal_vqa.metrics import flipped_when_right
from paperzoo.causal_vqa.files import match_pairs, read_annotations, read_mapping, read_results
from paperzoo.cli import main
from paperzoo.errors import DataError, UserError

TEN_CATS = ["cat"] * 10


def test_vqa_accuracy_rule():
    assert vqa_accuracy("cat", ["cat"] * 2 + ["dog"] * 8) == pytest.approx(2 / 3)
    assert vqa_accuracy("cat", ["cat"] * 3 + ["dog"] * 7) == 1.0
    assert vqa_accuracy("cow", TEN_CATS) == 0.0


def test_iv_categories_by_hand():
    two = ["cat"] * 5 + ["kitten"] * 5  # two accepted answers: a flip can be right on both sides
    pairs = [
        Pair("dog", "cat", TEN_CATS, TEN_CATS),  # neg->pos
        Pair("cat", "dog", TEN_CATS, TEN_CATS),  # pos->neg
        Pair("cat", "kitten", two, two),  # pos->pos
        Pair("dog", "cow", TEN_CATS, TEN_CATS),  # neg->neg
        Pair("cat", "cat", TEN_CATS, TEN_CATS),  # same, right
        Pair("cat", "cat", TEN_CATS, TEN_CATS),  # same, right
        Pair("dog", "dog", TEN_CATS, TEN_CATS),  # same, wrong
        Pair("dog", "dog", ["dog"] + ["cat"] * 9, ["dog"] + ["cat"] * 9),  # same, right (one match is enough)
    ]
    m = flip_metrics("iv", pairs)
    expected = {"flipped": 4, "same": 4, "neg_to_pos": 1, "pos_to_neg": 1, "pos_to_pos": 1, "neg_to_neg": 1,
                "same_right": 3, "same_wrong": 1}
    for name, count in expected.items():
        assert m[f"{name}_count"] == count, name
        assert m[name] == pytest.approx(count / 8)
    # VQA accuracy: originals 0,1,1,0,1,1,0,1/3 ; edited 1,0,1,0,1,1,0,1/3
    assert m["accuracy_original"] == pytest.approx((4 + 1 / 3) / 8)
    assert m["accuracy_edited"] == pytest.approx((4 + 1 / 3) / 8)
    # right originals: pos->neg, pos->pos and three same-right pairs; two of those five flipped
    assert flipped_when_right(m) == pytest.approx(2 / 5)
    assert math.isnan(flipped_when_right(flip_metrics("iv", pairs[:1] + pairs[3:4])))  # none answered right


def test_iv_pairs_are_judged_against_the_edited_questions_answers_as_the_notebook_does():
    """When the original and the edited question have different human answers, both predictions of a pair are
    judged against the edited question's (flip_accuracy_cal_iv_vqa.ipynb), so every unflipped pair is both right or
    both wrong; the accuracies still judge each prediction against its own question's answers."""
    dogs = ["dog"] * 10
    pairs = [Pair("cat", "cat", TEN_CATS, dogs),  # same: wrong for the edited question
             Pair("dog", "dog", TEN_CATS, dogs),  # same: right for the edited question
             Pair("cat", "dog", TEN_CATS, dogs)]  # flipped wrong -> right by the edited answers
    m = flip_metrics("iv", pairs)
    assert (m["same_right_count"], m["same_wrong_count"], m["neg_to_pos_count"]) == (1, 1, 1)
    assert m["same_right_count"] + m["same_wrong_count"] == m["same_count"]
    assert m["accuracy_original"] == pytest.approx(2 / 3) and m["accuracy_edited"] == pytest.approx(2 / 3)


def test_cv_consistency_and_non_numeric_exclusion():
    three, two = ["3"] * 10, ["2"] * 10
    pairs = [
        Pair("3", "2", three, two),  # consistent, both right
        Pair("4", "3", three, two),  # consistent (4 = 3 + 1), both wrong
        Pair("3", "3", three, two),  # flip pos->neg
        Pair("2", "2", three, two),  # flip neg->pos
        Pair("3", "1", three, two),  # flip... original right, edited wrong: pos->neg
        Pair("5", "1", three, two),  # flip neg->neg
        Pair("3", "many", three, two),  # non-numeric edited: excluded, still in the denominator
        Pair("yes", "2", three, two),  # non-numeric original: inconsistent, neg->pos
    ]
    m = flip_metrics("cv", pairs)
    assert m["excluded_non_numeric_count"] == 1
    assert m["same_count"] == 2 and m["consistency"] == pytest.approx(2 / 8)
    assert m["flipped_count"] == 5 and m["flipped"] == pytest.approx(5 / 8)
    assert (m["neg_to_pos_count"], m["pos_to_neg_count"], m["pos_to_pos_count"], m["neg_to_neg_count"]) == (2, 2, 0, 1)
    assert (m["same_right_count"], m["same_wrong_count"]) == (1, 1)
    assert m["accuracy_original"] == pytest.approx(4 / 8)  # exact match with the first answer
    assert m["accuracy_edited"] == pytest.approx(3 / 8)


def test_flip_metrics_errors():
    with pytest.raises(UserError, match="kind must be 'iv' or 'cv'"):
        flip_metrics("xv", [Pair("a", "a", ["a"], ["a"])])
    with pytest.raises(UserError, match="no edited pairs"):
        flip_metrics("iv", [])


def _write(tmp_path, original, edited, annotations):
    paths = {}
    for name, data in {"orig": original, "edit": edited, "ann": annotations}.items():
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(data))
    return paths


def _ann(qid, answer, parent=None):
    row = {"question_id": qid, "answers": [{"answer": answer}] * 10}
    if parent is not None:
        row["original_question_id"] = parent
    return row


def test_cli_on_small_files(tmp_path, capsys):
    original = [{"question_id": 1, "answer": "yes"}, {"question_id": 2, "answer": "red"}]
    edited = [{"question_id": 101, "answer": "no"}, {"question_id": 102, "answer": "yes"},
              {"question_id": 201, "answer": "red"}]
    annotations = {"annotations": [_ann(1, "yes"), _ann(2, "red"), _ann(101, "yes", 1), _ann(102, "yes", 1),
                                   _ann(201, "red", 2)]}
    p = _write(tmp_path, original, edited, annotations)
    code = main(["vqa-flips", "--kind", "iv", "--original", str(p["orig"]), "--edited", str(p["edit"]),
                 "--annotations", str(p["ann"]), "--json"])
    assert code == 0
    m = json.loads(capsys.readouterr().out)
    assert m["pairs"] == 3 and m["flipped_count"] == 1 and m["pos_to_neg_count"] == 1 and m["same_right_count"] == 2
    assert m["skipped"] == 0


def test_cli_mismatched_ids_are_a_clear_error(tmp_path, capsys):
    original = [{"question_id": 1, "answer": "2"}]
    edited = [{"question_id": 101, "answer": "1"}, {"question_id": 999, "answer": "1"}]
    annotations = {"annotations": [_ann(1, "2"), _ann(101, "1", 1)]}
    p = _write(tmp_path, original, edited, annotations)
    args = ["vqa-flips", "--kind", "cv", "--original", str(p["orig"]), "--edited", str(p["edit"]),
            "--annotations", str(p["ann"])]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 edited result(s) did not match" in err and "1 matched" in err and "no original id" in err
    assert main(args + ["--allow-unmatched"]) == 0
    out = capsys.readouterr().out
    assert "1 edited pairs matched, 1 skipped" in out and "consistency" in out
    p["edit"].write_text(json.dumps([{"question_id": 999, "answer": "1"}]))
    assert main(args) == 2
    assert "no edited question matched" in capsys.readouterr().err
    p["edit"].write_text(json.dumps({"not": "a list"}))
    assert main(args) == 2
    assert "VQA results format" in capsys.readouterr().err


ROW = {"question_id": 1, "answer": "yes"}
BAD_RESULTS = {  # file content -> what the error says
    "not-utf8": (b'[{"question_id": 1, "answer": "caf\xe9"}]',
                 r"results file .*r\.json is not UTF-8 text \(byte 34: .*\); save it as UTF-8"),
    "string-id": ([{"question_id": "q1", "answer": "yes"}], r"r\.json: \[0\]\.question_id is 'q1', not an integer"),
    "float-id": ([{"question_id": 1.5, "answer": "yes"}], r"\[0\]\.question_id is 1\.5, not an integer"),
    "missing-key": ([ROW, {"question_id": 2}], r"r\.json: \[1\] has no 'answer'; expected the VQA results format"),
    "list-row": ([ROW, [2, "no"]], r"\[1\] is a list, not an object; expected the VQA results format"),
    "object-file": (ROW, r"the file is an object, not a list; expected the VQA results format"),
    "repeated-id": ([ROW, {"question_id": 2, "answer": "no"}, ROW],
                    r"r\.json: question id\(s\) 1 appear more than once in the results; .*remove the repeats"),
    "repeated-key": (b'[{"question_id": 1, "answer": "yes", "answer": "no"}]',
                     r"repeats the key\(s\) 'answer' within one JSON object"),
}


@pytest.mark.parametrize("content, message", BAD_RESULTS.values(), ids=BAD_RESULTS)
def test_results_files_are_checked(tmp_path, content, message):
    path = tmp_path / "r.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    with pytest.raises(DataError, match=message):
        read_results(path)


def test_a_folder_given_as_a_file(tmp_path):
    with pytest.raises(DataError, match=r"results file .* is a folder; pass the JSON file itself"):
        read_results(tmp_path)


BAD_ANNOTATIONS = {
    "list-file": ([_ann(1, "yes")], r"a\.json: expected \{\"annotations\": \[\{\"question_id\""),
    "object-annotations": ({"annotations": {"1": _ann(1, "yes")}}, r"a\.json: annotations is an object, not a list"),
    "missing-id": ({"annotations": [_ann(1, "yes"), {"answers": []}]}, r"annotations\[1\] has no 'question_id'"),
    "missing-answer": ({"annotations": [{"question_id": 1, "answers": [{"text": "yes"}]}]},
                       r"annotations\[0\]\.answers\[0\] has no 'answer'"),
    "string-answers": ({"annotations": [{"question_id": 1, "answers": "yes"}]},
                       r"annotations\[0\]\.answers is a string, not a list"),
    "string-parent": ({"annotations": [_ann(1, "yes"), _ann(101, "no", "one")]},
                      r"annotations\[1\]\.original_question_id is 'one', not an integer question id"),
    "repeated-ids": ({"annotations": [_ann(7, "yes"), _ann(8, "no"), _ann(7, "no"), _ann(8, "no")]},
                     r"a\.json: question id\(s\) 7, 8 appear more than once in the annotations"),
}


@pytest.mark.parametrize("annotations, message", BAD_ANNOTATIONS.values(), ids=BAD_ANNOTATIONS)
def test_annotations_files_are_checked(tmp_path, annotations, message):
    path = tmp_path / "a.json"
    path.write_text(json.dumps(annotations))
    with pytest.raises(DataError, match=message):
        read_annotations(path)


BAD_MAPPINGS = {
    "list-file": (json.dumps([[101, 1]]), r"m\.json: the mapping is a list; expected \{\"<edited question_id>\""),
    "word-key": (json.dumps({"101": 1, "x": 1}), r"m\.json: a key is 'x', not an integer question id"),
    "word-value": (json.dumps({"101": "one"}), r"m\.json: the value of key '101' is 'one', not an integer question"),
    "same-id-twice": (json.dumps({"101": 1, "0101": 2}),
                      r"question id\(s\) 101 appear more than once in the mapping's keys"),
    "repeated-key": ('{"101": 1, "101": 2}', r"mapping file .*m\.json repeats the key\(s\) '101' within one JSON"),
}


@pytest.mark.parametrize("content, message", BAD_MAPPINGS.values(), ids=BAD_MAPPINGS)
def test_mapping_files_are_checked(tmp_path, content, message):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_mapping(path)


def test_match_pairs_reads_a_mapping(tmp_path):
    p = _write(tmp_path, [], [], {"annotations": [_ann(1, "yes"), _ann(101, "no")]})
    (tmp_path / "m.json").write_text(json.dumps({"101": 1}))
    matched = match_pairs({1: "yes"}, {101: "no"}, p["ann"], tmp_path / "m.json")
    assert matched.pairs == [Pair("yes", "no", ["yes"] * 10, ["no"] * 10)] and not matched.skipped
