from pathlib import Path

import pytest
import yaml

from vidmp3.workflow.config import load_config, load_edits, load_videos
from vidmp3.errors import InputError

SCHEMAS = Path(__file__).resolve().parents[1] / "config" / "schemas"

VIDEOS_HEADER = "video\tsource\tmasks\tprompt\tcategory\tmotion\tfirst_frame\tframes\tstride\tsize\tcrop\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def videos(tmp_path):
    return write(
        tmp_path / "videos.tsv",
        VIDEOS_HEADER
        + "car\tclips/car.mp4\t\ta car\tobject\tlarge\t\t\t\t64x64\t\n"
        + "dog\tclips/dog\tclips/dog-masks\ta dog\tanimal\tsmall\t2\t8\t2\t128x64\tnone\n",
    )


def test_shipped_config_and_sheets_validate(repo):
    config = load_config(yaml.safe_load((repo / "config" / "config.yaml").read_text()), SCHEMAS)
    videos = load_videos(repo / config["videos"], SCHEMAS)
    edits = load_edits(repo / config["edits"], videos, SCHEMAS)
    assert set(edits["video"]) <= set(videos.index)
    assert all(f"results/clips/{clip}/video.mp4" in set(videos["source"]) for clip in config["render"]["clips"])


def test_defaults_filled_and_numbers_parsed(videos):
    sheet = load_videos(videos, SCHEMAS)
    car, dog = sheet.loc["car"], sheet.loc["dog"]
    assert (car["first_frame"], car["frames"], car["stride"], car["crop"], car["masks"]) == (0, 16, 4, "center", "")
    assert (dog["first_frame"], dog["frames"], dog["stride"], dog["size"]) == (2, 8, 2, "128x64")


def test_frames_all_is_kept_as_a_word_and_other_words_are_refused(tmp_path):
    sheet = write(tmp_path / "videos.tsv", VIDEOS_HEADER + "car\tclips/car.mp4\t\ta car\tobject\t\t\tall\t2\t64x64\t\n")
    assert load_videos(sheet, SCHEMAS).loc["car", "frames"] == "all"
    for cell, message in [
        ("al", "line 2: frames: 'al' does not match '\\^all\\$'"),
        ("1", "frames: 1 is less than the minimum of 2"),
    ]:
        write(sheet, VIDEOS_HEADER + f"car\tclips/car.mp4\t\ta car\tobject\t\t\t{cell}\t2\t64x64\t\n")
        with pytest.raises(InputError, match=message):
            load_videos(sheet, SCHEMAS)


def test_config_defaults_and_unknown_key():
    config = load_config({"render": {"clips": {"cube": {"shape": "sphere"}}}}, SCHEMAS)
    assert config["videos"] == "config/videos.tsv"
    assert config["render"]["clips"]["cube"]["frames"] == 64
    with pytest.raises(InputError, match="'fps_typo' was unexpected"):
        load_config({"render": {"clips": {"cube": {"fps_typo": 3}}}}, SCHEMAS)
    with pytest.raises(InputError, match="'stages' was unexpected"):
        load_config({"stages": 1}, SCHEMAS)


def test_every_schema_key_has_description_and_default():
    def walk(schema, required=()):
        for name, sub in schema.get("properties", {}).items():
            assert "description" in sub, name
            assert "default" in sub or name in required, f"{name} has no default"
            walk(sub, sub.get("required", ()))
        for sub in schema.get("$defs", {}).values():
            walk(sub, sub.get("required", ()))

    for name in ("config", "videos", "edits"):
        schema = yaml.safe_load((SCHEMAS / f"{name}.schema.yaml").read_text())
        walk(schema, schema.get("required", ()))


@pytest.mark.parametrize(
    "row, message",
    [
        ("../up\tclips/a.mp4\t\ta\tobject\t\t\t\t\t64x64\t", "line 2: video: '../up' does not match"),
        ("Car\tclips/a.mp4\t\ta\tobject\t\t\t\t\t64x64\t", "does not match"),
        ("car\tclips/a.mp4\t\ta\tplant\t\t\t\t\t64x64\t", "category: 'plant' is not one of"),
        ("car\tclips/a.mp4\t\ta\tobject\t\tmany\t\t\t64x64\t", "column 'first_frame': 'many' is not an integer"),
        ("car\tclips/a.mp4\t\ta\tobject\t\t\t\t\t60x64\t", "size 60x64 must be positive multiples of 8"),
        ("car\tclips/a.mp4\t\t\tobject\t\t\t\t\t64x64\t", "'prompt' is a required property"),
    ],
)
def test_bad_video_rows(tmp_path, row, message):
    sheet = write(tmp_path / "videos.tsv", VIDEOS_HEADER + row + "\n")
    with pytest.raises(InputError, match=message) as error:
        load_videos(sheet, SCHEMAS)
    assert str(sheet) in str(error.value)


def test_unknown_column_and_duplicate_ids(tmp_path):
    sheet = write(tmp_path / "v.tsv", "video\tsource\tprompt\tcategory\tcolour\ncar\ta.mp4\tp\tobject\tred\n")
    with pytest.raises(InputError, match="'colour' was unexpected"):
        load_videos(sheet, SCHEMAS)
    sheet = write(tmp_path / "v.tsv", "video\tsource\tprompt\tcategory\ncar\ta.mp4\tp\tobject\ncar\tb.mp4\tq\tobject\n")
    with pytest.raises(InputError, match="duplicate video: car"):
        load_videos(sheet, SCHEMAS)


def test_missing_sheet(tmp_path):
    with pytest.raises(InputError, match="sheet not found"):
        load_videos(tmp_path / "nope.tsv", SCHEMAS)


@pytest.mark.parametrize(
    "rows, message",
    [
        ("cat\tsphere\ta sphere\t\n", "videos that are not in the videos sheet: cat"),
        ("car\tsphere\t \t\n", "'prompt' is a required property"),
        ("car\tsphere\ta\t\ncar\tsphere\tb\t\n", "duplicate video/concept: car/sphere"),
        ("car\tsphere_1\ta\t\n", "concept: 'sphere_1' does not match"),
        ("car\tsphere\ta\tremix\n", "kind: 'remix' is not one of"),
        ("car\tsphere\ta\tstyle\textra\n", "line 2: has 5 tab-separated fields, the header has 4"),
    ],
)
def test_bad_edit_rows(tmp_path, videos, rows, message):
    sheet = write(tmp_path / "edits.tsv", "video\tconcept\tprompt\tkind\n" + rows)
    with pytest.raises(InputError, match=message):
        load_edits(sheet, load_videos(videos, SCHEMAS), SCHEMAS)


def test_edit_names(tmp_path, videos):
    sheet = write(tmp_path / "edits.tsv", "video\tconcept\tprompt\tkind\ncar\tsphere\ta sphere\t\ndog\tcat\ta cat\tstyle\n")
    edits = load_edits(sheet, load_videos(videos, SCHEMAS), SCHEMAS)
    assert list(edits.index) == ["car_sphere", "dog_cat"]
    assert list(edits["kind"]) == ["cross-domain", "style"]


def test_a_config_error_names_the_file_line_and_key(tmp_path):
    base, override = tmp_path / "config.yaml", tmp_path / "site.yaml"
    write(base, "videos: config/videos.tsv\nediting:\n  steps: 2\n  guidance_scale: 7.5\n")
    write(override, "model:\n  preset: tiny\nediting:\n  steps: two\n")
    config = yaml.safe_load(base.read_text())
    config["editing"].update(yaml.safe_load(override.read_text())["editing"])
    with pytest.raises(InputError, match=rf"^{override}, line 4, key editing/steps: 'two' is not of type 'integer'$"):
        load_config(config, SCHEMAS, files=[base, override])
    with pytest.raises(InputError, match=r"^--config, key editing/steps: "):
        load_config(config, SCHEMAS, files=[base, override], overrides={"editing": {"steps": "two"}})


@pytest.mark.parametrize(
    "text, line",
    [
        (VIDEOS_HEADER.replace("\t", "  "), 1),  # the header itself
        (VIDEOS_HEADER + "car  clips/car.mp4  \ta car\tobject\tlarge\t\t\t\t64x64\t\n", 2),
    ],
)
def test_a_sheet_with_spaces_for_tabs_says_it_must_be_tab_separated(tmp_path, text, line):
    with pytest.raises(InputError, match=rf"line {line}: .*the sheet must be tab-separated"):
        load_videos(write(tmp_path / "videos.tsv", text), SCHEMAS)


def test_sheet_paths_must_exist_unless_the_workflow_makes_them(tmp_path, videos, monkeypatch):
    from vidmp3.workflow.config import check_sheet_paths

    monkeypatch.chdir(tmp_path)
    sheet = load_videos(videos, SCHEMAS)
    with pytest.raises(InputError, match="video car: source clips/car.mp4 does not exist"):
        check_sheet_paths(sheet, videos, set())
    (tmp_path / "clips" / "dog").mkdir(parents=True)
    check_sheet_paths(sheet, videos, {"clips/car.mp4", "clips/dog-masks"})
    (tmp_path / "clips" / "dog-masks").write_text("")
    with pytest.raises(InputError, match="video dog: masks clips/dog-masks is not a folder"):
        check_sheet_paths(sheet, videos, {"clips/car.mp4"})
