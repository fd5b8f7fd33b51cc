"""Tables come from the per-edit records and benchmark files only: right shape, right statistics,
no rows for missing data. Frame strips show the picked frames of source above edit."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vidmp3.errors import InputError
from vidmp3.metrics import METHODS, METRICS, evaluate_edit
from vidmp3.store import write_array
from vidmp3.strips import picked_frames, strip_image, write_edit_strip
from vidmp3.tables import (
    ablation_table,
    read_benchmarks,
    read_edit_metrics,
    read_not_computed,
    summary_table,
    time_cost_table,
    write_tables,
)


def record(video, concept, method, category="object", kind="cross-domain", **values):
    metrics = dict.fromkeys(METRICS)
    metrics.update(values)
    missing = {name: "not measured in this test" for name, value in metrics.items() if value is None}
    return {
        "video": video,
        "concept": concept,
        "method": method,
        "category": category,
        "kind": kind,
        "prompt": "p",
        "metrics": metrics,
        "not_available": missing,
        "details": {},
    }


RECORDS = [
    record("cube", "sphere", "vidmp3", motion_fidelity=0.9, warp_error=0.010),
    record("cube", "snow", "vidmp3", motion_fidelity=0.7, warp_error=0.030),
    record("dog", "cat", "vidmp3", category="animal", motion_fidelity=0.8),  # no warp error
    record("cube", "sphere", "tune-a-video", motion_fidelity=0.5, warp_error=0.050),
    record("cube", "snow", "tune-a-video", motion_fidelity=0.3, warp_error=0.070),
    record("cube", "sphere", "corr-only", motion_fidelity=0.6),
]


def write_records(folder, records):
    folder.mkdir(exist_ok=True)
    paths = []
    for index, item in enumerate(records):
        path = folder / f"{index}.json"
        path.write_text(json.dumps(item))
        paths.append(path)
    return paths


def test_tidy_rows_are_the_available_values_only(tmp_path):
    tidy = read_edit_metrics(write_records(tmp_path / "eval", RECORDS))
    assert len(tidy) == 6 + 4  # six fidelities, four warp errors; every null gives no row
    assert list(tidy.columns) == ["video", "concept", "method", "category", "kind", "metric", "value"]
    assert set(tidy["metric"]) == {"motion_fidelity", "warp_error"}


def test_summary_statistics_are_computed_from_the_records(tmp_path):
    summary = summary_table(read_edit_metrics(write_records(tmp_path / "eval", RECORDS)))
    assert list(summary.columns) == ["method", "category", "metric", "mean", "std", "count"]
    keys = list(summary[["method", "category", "metric"]].itertuples(index=False, name=None))
    assert keys == [  # methods in their declared order, then categories, then metrics in METRICS order
        ("vidmp3", "animal", "motion_fidelity"),
        ("vidmp3", "object", "warp_error"),
        ("vidmp3", "object", "motion_fidelity"),
        ("corr-only", "object", "motion_fidelity"),
        ("tune-a-video", "object", "warp_error"),
        ("tune-a-video", "object", "motion_fidelity"),
    ]
    row = summary.set_index(["method", "category", "metric"]).loc[("vidmp3", "object", "motion_fidelity")]
    assert row["mean"] == pytest.approx(0.8) and row["std"] == pytest.approx(np.std([0.9, 0.7], ddof=1))
    assert row["count"] == 2
    single = summary.set_index(["method", "category", "metric"]).loc[("vidmp3", "animal", "motion_fidelity")]
    assert single["count"] == 1 and np.isnan(single["std"])


def test_ablation_has_only_variants_with_records(tmp_path):
    ablation = ablation_table(read_edit_metrics(write_records(tmp_path / "eval", RECORDS)))
    assert list(ablation["method"].unique()) == ["vidmp3", "corr-only"]  # no baseline, no invented rows
    vidmp3 = ablation[(ablation["method"] == "vidmp3") & (ablation["metric"] == "motion_fidelity")].iloc[0]
    assert vidmp3["mean"] == pytest.approx(0.8) and vidmp3["count"] == 3  # both categories together


@pytest.mark.parametrize(
    "item, message",
    [
        ({**RECORDS[0], "method": "dmt"}, "method 'dmt' is not one of"),
        ({**RECORDS[0], "metrics": {"fvd": 1.0}}, "unknown metrics fvd"),
        ({key: value for key, value in RECORDS[0].items() if key != "category"}, "lacks category"),
    ],
)
def test_bad_records_are_refused(tmp_path, item, message):
    with pytest.raises(InputError, match=message):
        read_edit_metrics(write_records(tmp_path / "eval", [item]))


def test_two_records_of_one_edit_are_refused(tmp_path):
    empty = record("cube", "sphere", "vidmp3")  # even one without any value
    with pytest.raises(InputError, match="are two records of the edit cube/sphere/vidmp3"):
        read_edit_metrics(write_records(tmp_path / "eval", [RECORDS[0], empty]))


BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path, seconds, rss="NA"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK_HEADER + "".join(f"{s}\t0:00:01\t{rss}\t1\t1\t1\t0\t0\t0\t1\n" for s in seconds))
    return path


def benchmark_files(root):
    return [
        write_benchmark(root / "frames" / "cube.tsv", [2.0], rss=100.0),
        write_benchmark(root / "frames" / "dog.tsv", [4.0], rss=150.0),
        write_benchmark(root / "edit" / "vidmp3" / "cube_sphere.tsv", [10.0, 12.0]),  # two repeats: their mean
        write_benchmark(root / "edit" / "vidmp3" / "cube_snow.tsv", [20.0]),
        write_benchmark(root / "edit" / "vidmp3" / "dog_cat.tsv", [30.0]),
    ]


def test_time_cost_per_stage_video_and_edit(tmp_path):
    root = tmp_path / "benchmarks"
    table = time_cost_table(read_benchmarks(benchmark_files(root), root), videos=2, edits=3)
    assert list(table["stage"]) == ["edit/vidmp3", "frames"]
    edit, frames = table.iloc[0], table.iloc[1]
    assert edit["runs"] == 3 and edit["seconds_total"] == pytest.approx(61.0)
    assert edit["seconds_mean"] == pytest.approx(61.0 / 3)
    assert edit["seconds_std"] == pytest.approx(np.std([11, 20, 30], ddof=1))
    assert edit["seconds_per_edit"] == pytest.approx(61.0 / 3) and np.isnan(edit["max_rss_mb"])  # NA stays missing
    assert frames["seconds_per_video"] == pytest.approx(3.0) and frames["max_rss_mb"] == 150.0


def test_benchmark_files_outside_a_stage_folder_are_refused(tmp_path):
    root = tmp_path / "benchmarks"
    with pytest.raises(InputError, match="must be in a stage folder"):
        read_benchmarks([write_benchmark(root / "loose.tsv", [1.0])], root)
    with pytest.raises(InputError, match="lacks max_rss"):
        bad = root / "frames" / "bad.tsv"
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_text("s\n1.0\n")
        read_benchmarks([bad], root)


def test_write_tables_csv_and_markdown(tmp_path):
    root = tmp_path / "benchmarks"
    out = {name: tmp_path / "eval" / name for name in ("summary.csv", "ablation.csv", "time_cost.csv", "summary.md")}
    write_tables(write_records(tmp_path / "records", RECORDS), benchmark_files(root), root, 2, 3, *out.values())
    summary = pd.read_csv(out["summary.csv"])
    assert summary.shape == (6, 6)
    assert pd.read_csv(out["ablation.csv"])["method"].tolist() == ["vidmp3", "vidmp3", "corr-only"]
    assert len(pd.read_csv(out["time_cost.csv"])) == 2
    page = out["summary.md"].read_text()
    assert "0.8 ± 0.141 (n=2)" in page  # vidmp3 on objects: mean ± sample std (count)
    assert "motion fidelity ↑" in page and "warp error ↓" in page
    assert "| corr-only" in page and "no-motionguide" not in page and "depth-only" not in page
    assert "edit/vidmp3" in page


def test_the_page_says_what_was_not_computed_and_why(tmp_path):
    clip_missing = {"clip_text_alignment": "no CLIP model configured", "clip_temporal_consistency": "no CLIP model configured"}
    records = [
        {**record("cube", "sphere", "vidmp3", motion_fidelity=0.98, warp_error=0.01), "not_available": clip_missing},
        {**record("cube", "snow", "vidmp3", motion_fidelity=0.97, warp_error=0.02), "not_available": clip_missing},
    ]
    paths = write_records(tmp_path / "records", records)
    not_computed = read_not_computed(paths)
    assert not_computed[["metric", "edits", "of"]].values.tolist() == [
        ["clip_text_alignment", 2, 2],
        ["clip_temporal_consistency", 2, 2],
    ]
    root, out = tmp_path / "benchmarks", [tmp_path / "eval" / name for name in ("s.csv", "a.csv", "t.csv", "summary.md")]
    write_tables(paths, benchmark_files(root), root, 1, 2, *out)
    page = out[-1].read_text()
    assert "No edit was checked against its prompt" in page and "evaluation: clip_model" in page
    assert "| vidmp3   | CLIP text alignment" in page and "2 of 2 edits" in page and "no CLIP model configured" in page
    # with every metric there, the page says so and gives no warning
    full = [record("cube", "sphere", "vidmp3", **dict.fromkeys(METRICS, 0.5))]
    write_tables(write_records(tmp_path / "full", full), benchmark_files(root), root, 1, 1, *out)
    page = out[-1].read_text()
    assert "Every metric was computed for every edit." in page and "No edit was checked" not in page


def test_an_evaluated_edit_gives_rows_only_for_its_measured_metrics(tmp_path):
    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8), 4, axis=0)
    masks = np.zeros((4, 32, 32), bool)
    masks[:, 8:24, 8:24] = True
    write_array(tmp_path / "frames", frames, {"frame_indices": [0, 1, 2, 3], "size": [32, 32], "crop": "center"})
    write_array(tmp_path / "mask", masks)
    path = tmp_path / "eval" / "noise_same.json"
    evaluate_edit(
        tmp_path / "frames",
        tmp_path / "mask",
        tmp_path / "frames",
        path,
        video="noise",
        concept="same",
        method="concat",
        category="object",
        kind="style",
        prompt="noise",
    )
    tidy = read_edit_metrics([path])
    assert sorted(tidy["metric"]) == ["motion_fidelity", "warp_error"]
    assert ablation_table(tidy)["method"].tolist() == ["concat", "concat"]
    assert set(METHODS) >= set(tidy["method"])


# ---- frame strips -------------------------------------------------------------------------------


def test_picked_frames_span_the_clip():
    assert picked_frames(16, 8) == [0, 2, 4, 6, 9, 11, 13, 15]
    assert picked_frames(3, 8) == [0, 1, 2]


def test_strip_shows_source_above_edit(tmp_path):
    source = np.zeros((6, 32, 40, 3), np.uint8)
    source[..., 0] = 255  # red source
    edit = np.zeros_like(source)
    edit[..., 2] = np.arange(6)[:, None, None] * 40  # blue edit, brighter each frame
    write_array(tmp_path / "frames", source)
    write_array(tmp_path / "edit", edit)
    out = tmp_path / "strips" / "cube_sphere.png"
    write_edit_strip(tmp_path / "frames", tmp_path / "edit", out, "cube → sphere (vidmp3)", columns=3)
    image = np.asarray(Image.open(out).convert("RGB"))
    assert np.array_equal(image, strip_image([("source", source), ("edit", edit)], 3, "cube → sphere (vidmp3)"))
    red_rows = np.flatnonzero(((image == [255, 0, 0]).all(-1)).any(1))
    blue = (image[..., 2] > 0) & (image[..., 0] == 0) & (image[..., 1] == 0)
    assert red_rows.max() < np.flatnonzero(blue.any(1)).min()  # source strictly above edit
    # the first and last frames are picked: the edit row holds blue 0 (frame 0) and 200 (frame 5)
    edit_row = image[np.flatnonzero(blue.any(1))[0]]
    assert {0, 200} <= set(edit_row[(edit_row[:, 0] == 0) & (edit_row[:, 1] == 0)][:, 2])


def test_strip_rows_must_match(tmp_path):
    with pytest.raises(InputError, match="strip row 'edit'"):
        strip_image([("source", np.zeros((4, 8, 8, 3), np.uint8)), ("edit", np.zeros((4, 8, 16, 3), np.uint8))])
