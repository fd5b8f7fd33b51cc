"""Several subjects per clip: the sheets' subjects cells, instance-id masks, per-subject priors."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidmp3.workflow.config import load_edits, load_videos
from vidmp3.errors import InputError
from vidmp3.frames import ingest_frames, ingest_masks
from vidmp3.priors.stages import corr_stage, depth_stage, guide_stage, mask_stage
from vidmp3.store import read_array
from vidmp3.subjects import parse_scales, parse_subjects

SCHEMAS = Path(__file__).resolve().parents[1] / "config" / "schemas"
VIDEOS = "video\tsource\tmasks\tprompt\tcategory\tsubjects\n"
EDITS = "video\tconcept\tprompt\tsubjects\tsubject_scales\n"


def sheet(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def videos(tmp_path):
    return load_videos(
        sheet(
            tmp_path / "videos.tsv",
            VIDEOS
            + "dogs\tclips/dogs.mp4\tclips/dogs-masks\ta black dog and a white dog\tanimal\t1=a black dog; 2=a white dog\n"
            + "car\tclips/car.mp4\t\ta car\tobject\t\n",
        ),
        SCHEMAS,
    )


def test_cells_parse():
    assert parse_subjects("1=a tiger; 2=a fox", "here") == {1: "a tiger", 2: "a fox"}
    assert parse_subjects("", "here") == {}
    assert parse_scales("2=1.5", "here") == {2: 1.5}


def test_a_valid_two_subject_edit(tmp_path, videos):
    edits = load_edits(
        sheet(
            tmp_path / "edits.tsv", EDITS + "dogs\ttiger-fox\ta tiger and a fox\t1=a tiger;2=a fox\t2=1.5\ncar\tbus\ta bus\t\t\n"
        ),
        videos,
        SCHEMAS,
    )
    assert edits.loc["dogs_tiger-fox", "subjects"] == "1=a tiger;2=a fox"
    assert edits.loc["car_bus", "subjects"] == ""


@pytest.mark.parametrize(
    "row, message",
    [
        (
            "dogs\tx\ta tiger and a fox\t1=a tiger;3=a fox\t",
            "column subjects: edit dogs_x: subject 3 is not a subject of its video",
        ),
        ("dogs\tx\ta tiger and a fox\t1=a tiger\t", "column subjects: edit dogs_x: subject 2 is missing"),
        ("dogs\tx\ta tiger and a fox\t1=a tiger;2=a wolf\t", "subject 2's phrase 'a wolf' is not in the prompt"),
        ("dogs\tx\ta tiger and a fox\t1=a tiger;2=a fox\t3=2", "column subject_scales: edit dogs_x: subject 3 is not a subject"),
        ("dogs\tx\ta tiger and a fox\t1=a tiger;2=a fox\t2=9", "scale 9.0 must lie in"),
        ("dogs\tx\ta tiger and a fox\t1 a tiger;2=a fox\t", "is not 'id=phrase'"),
        ("dogs\tx\ta tiger and a fox\t0=a tiger;2=a fox\t", "0 is the background"),
        ("dogs\tx\ta tiger and a fox\t1=a tiger;1=a fox\t", "named twice"),
        ("car\tx\ta bus\t1=a bus\t", "its video has no subjects column"),
        ("dogs\tx\ta tiger and a fox\t\t", "subject 1 is missing"),
    ],
)
def test_invalid_mappings_fail_naming_sheet_line_column_and_fix(tmp_path, videos, row, message):
    edits = sheet(tmp_path / "edits.tsv", EDITS + "car\tok\ta bus\t\t\n" + row + "\n")
    with pytest.raises(InputError, match=message) as error:
        load_edits(edits, videos, SCHEMAS)
    text = str(error.value)
    assert f"{edits}, line 3" in text and "column subject" in text and "fix" in text


@pytest.mark.parametrize(
    "row, message",
    [
        ("dogs\ta.mp4\tm\ttwo dogs\tanimal\t1=a black dog", "phrase 'a black dog' is not in the prompt"),
        ("dogs\ta.mp4\t\ta dog and a cat\tanimal\t1=a dog;2=a cat", "has subjects but no masks"),
    ],
)
def test_invalid_video_subjects(tmp_path, row, message):
    videos = sheet(tmp_path / "videos.tsv", VIDEOS + row + "\n")
    with pytest.raises(InputError, match=message) as error:
        load_videos(videos, SCHEMAS)
    assert f"{videos}, line 2 (video dogs), column subjects" in str(error.value)


def two_squares(frames: int = 6, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Two textured squares moving apart: frames (N,H,W,3) and instance ids (N,H,W) (1 left, 2 right)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(40, 255, (8, 8, 3), dtype=np.uint8)
    video = np.full((frames, size, size, 3), 128, np.uint8)
    labels = np.zeros((frames, size, size), np.uint8)
    for t in range(frames):
        for subject, x in ((1, 10 - t), (2, 14 + t)):
            video[t, 12:20, x : x + 8] = texture if subject == 1 else texture[::-1]
            labels[t, 12:20, x : x + 8] = subject
    return video, labels


def write_palette_masks(folder: Path, labels: np.ndarray) -> Path:
    folder.mkdir()
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)  # DAVIS 2017: black, dark red, dark green
    for index, frame in enumerate(labels):
        image = Image.fromarray(frame, mode="P")
        image.putpalette(palette)
        image.save(folder / f"{index:05d}.png")
    return folder


@pytest.fixture
def two_subject_group(tmp_path):
    video, labels = two_squares()
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    for index, frame in enumerate(video):
        Image.fromarray(frame).save(frames_dir / f"{index:05d}.png")
    masks = write_palette_masks(tmp_path / "masks", labels)
    group = tmp_path / "dogs.zarr"
    ingest_frames(frames_dir, group, first_frame=0, frames=6, stride=1, size=(32, 32), crop="none")
    ingest_masks(masks, group, subjects=[1, 2])
    return group, labels


def test_palette_masks_become_instance_ids(two_subject_group, tmp_path):
    group, labels = two_subject_group
    given, attrs = read_array(group / "mask_given")
    assert given.dtype == np.uint8 and attrs["subjects"] == [1, 2]
    np.testing.assert_array_equal(given, labels)
    with pytest.raises(InputError, match=r"holds subject id\(s\) 2, which the videos sheet's subjects \(1\) do not name"):
        ingest_masks(tmp_path / "masks", group, subjects=[1])


def test_priors_per_subject(two_subject_group):
    group, labels = two_subject_group
    mask_stage(group / "frames", group / "mask", "given", {}, given=group / "mask_given")
    for stage, name in ((corr_stage, "corr"), (depth_stage, "depth")):
        backend = "flow" if name == "corr" else "mask-area"
        stage(group / "frames", group / "mask", group / name, backend, {}, subjects=group / "mask_given")
    guide_stage(
        group / "frames",
        group / "corr",
        group / "depth",
        group / "mask",
        group / "guide",
        group / "alpha",
        group.parent / "fig.png",
        subjects=group / "mask_given",
    )
    mask, _ = read_array(group / "mask")
    corr, corr_attrs = read_array(group / "corr")
    depth, _ = read_array(group / "depth")
    alpha, alpha_attrs = read_array(group / "alpha")
    np.testing.assert_array_equal(mask, labels > 0)
    # each subject coloured by its own frame-0 box: both span the colour map, from R ~ 0 to R ~ 1
    for subject in (1, 2):
        red = corr[0][labels[0] == subject][:, 0].astype(np.float32)
        assert red.min() < 0.1 and red.max() > 0.9
    assert corr_attrs["subjects"] == [1, 2] and len(corr_attrs["colour_boxes"]) == 2
    # depth normalised per subject: each subject reaches the top of the range in some frame
    for subject in (1, 2):
        assert depth[labels == subject].max() == pytest.approx(1.0, abs=1e-3)
    assert alpha.shape == (6, 2) and alpha_attrs["subjects"] == [1, 2]
    np.testing.assert_allclose(alpha[:, 0], (labels == 1).mean(axis=(1, 2)))


def test_every_subject_must_show_in_frame_zero(two_subject_group):
    group, labels = two_subject_group
    from vidmp3.store import write_array

    hidden = labels.copy()
    hidden[0][hidden[0] == 2] = 0
    write_array(group / "mask_given", hidden, {"subjects": [1, 2], "masks": "m"})
    with pytest.raises(InputError, match="subject 2 is not in its instance mask of frame 0"):
        mask_stage(group / "frames", group / "mask", "given", {}, given=group / "mask_given")


def test_a_video_with_subjects_reads_its_instance_ids_and_needs_the_given_masks():
    import pandas as pd

    from vidmp3.workflow.prior_settings import guide_inputs, prior_inputs, prior_params

    config = {
        "priors": {"mask": "motion", "corr": "", "depth": ""},
        "model": {"preset": "tiny"},
        "render": {"clips": {}},
        "toyworld": {"clips": {}},
    }
    row = pd.Series(
        {
            "source": "clips/two",
            "masks": "clips/two-masks",
            "corr_backend": "",
            "mask_backend": "",
            "depth_backend": "",
            "subject_class": "",
            "subjects": "1=a cube; 2=a cone",
        },
        name="two",
    )
    assert prior_inputs("corr", row, config)["subjects"] == "results/priors/two.zarr/mask_given"
    assert guide_inputs(row)["subjects"] == "results/priors/two.zarr/mask_given"
    with pytest.raises(InputError, match="video two has subjects, which need mask backend 'given'"):
        prior_params("mask", row, config)
    assert "subjects" not in guide_inputs(row.drop("subjects"))
