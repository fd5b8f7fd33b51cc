import csv
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from vidmp3.errors import InputError
from vidmp3.frames import crop_box, frame_indices, ingest_frames, ingest_masks
from vidmp3.store import read_array


def write_video(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def gradient_frames(n: int, height: int = 48, width: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([np.dstack([x * 4 % 256, y * 5 % 256, np.full_like(x, 20 * t % 256)]) for t in range(n)]).astype(np.uint8)


def write_folder(folder: Path, frames: np.ndarray, suffix: str = ".png") -> Path:
    folder.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{index:05d}{suffix}")
    return folder


def leftovers(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_frame_indices_and_crop_box():
    assert frame_indices(3, 4, 2) == [3, 5, 7, 9]
    assert crop_box(854, 480, (512, 512), "center") == (187, 0, 667, 480)
    assert crop_box(480, 854, (512, 256), "center") == (0, 307, 480, 547)
    assert crop_box(854, 480, (512, 512), "none") == (0, 0, 854, 480)


def test_video_file_is_sampled_resized_and_described(tmp_path):
    source = write_video(tmp_path / "clip.mp4", gradient_frames(20))
    group = tmp_path / "priors" / "clip.zarr"
    ingest_frames(source, group, first_frame=1, frames=4, stride=3, size=(32, 24), crop="center")
    frames, attrs = read_array(group / "frames")
    assert frames.shape == (4, 24, 32, 3) and frames.dtype == np.uint8
    assert attrs["frame_indices"] == [1, 4, 7, 10]
    assert attrs["fps"] == pytest.approx(10.0) and attrs["source_frames"] == 20
    assert attrs["size"] == [32, 24] and attrs["stride"] == 3 and len(attrs["sha256"]) == 64
    # the blue channel encodes the frame index (20 * t), so sampling picked the right frames
    assert np.abs(frames[..., 2].mean(axis=(1, 2)) - np.array([20, 80, 140, 200])).max() < 6
    assert (group / "zarr.json").is_file()


def test_all_frames_takes_every_stride_th_frame_to_the_clip_s_end(tmp_path):
    source = write_video(tmp_path / "clip.mp4", gradient_frames(20))
    ingest_frames(source, tmp_path / "v.zarr", first_frame=1, frames="all", stride=3, size=(32, 24), crop="center")
    frames, attrs = read_array(tmp_path / "v.zarr" / "frames")
    assert attrs["frame_indices"] == [1, 4, 7, 10, 13, 16, 19] and frames.shape == (7, 24, 32, 3)
    assert np.abs(frames[..., 2].mean(axis=(1, 2)) - 20 * np.array([1, 4, 7, 10, 13, 16, 19]) % 256).max() < 6
    folder = write_folder(tmp_path / "frames", gradient_frames(6))
    ingest_frames(folder, tmp_path / "f.zarr", first_frame=0, frames="all", stride=2, size=(32, 24), crop="none")
    assert read_array(tmp_path / "f.zarr" / "frames")[1]["frame_indices"] == [0, 2, 4]
    with pytest.raises(
        InputError, match=f"{folder}: has 6 frames, so frames all from first frame 4 every 2 gives 1; .* at least 2"
    ):
        ingest_frames(folder, tmp_path / "g.zarr", first_frame=4, frames="all", stride=2, size=(32, 24), crop="none")
    assert not (tmp_path / "g.zarr").exists()


def test_frame_folder_with_masks(tmp_path):
    frames = gradient_frames(6)
    masks = np.zeros((6, 48, 64), np.uint8)
    masks[:, 10:30, 20:50] = 255
    source = write_folder(tmp_path / "frames", frames, ".jpg")
    mask_folder = write_folder(tmp_path / "masks", masks)
    group = tmp_path / "clip.zarr"
    ingest_frames(source, group, first_frame=0, frames=3, stride=2, size=(32, 24), crop="none")
    ingest_masks(mask_folder, group)
    mask, attrs = read_array(group / "mask_given")
    assert mask.shape == (3, 24, 32) and mask.dtype == bool
    assert mask[:, 5:15, 10:25].all() and not mask[:, :4].any() and not mask[:, :, :9].any()
    assert attrs["frame_indices"] == [0, 2, 4]


def test_grayscale_frames_are_converted(tmp_path):
    gray = gradient_frames(3)[..., 0]
    folder = tmp_path / "gray"
    folder.mkdir()
    for index, frame in enumerate(gray):
        Image.fromarray(frame, mode="L").save(folder / f"{index:05d}.png")
    ingest_frames(folder, tmp_path / "g.zarr", 0, 3, 1, (64, 48), "none")
    frames, _ = read_array(tmp_path / "g.zarr" / "frames")
    assert frames.shape == (3, 48, 64, 3)
    assert np.array_equal(frames[..., 0], frames[..., 1])


def bad_inputs(tmp_path: Path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.mp4").write_text("this is a text file, not a video\n" * 20)
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    short = write_video(tmp_path / "short.mp4", gradient_frames(5))
    mixed = write_folder(tmp_path / "mixed", gradient_frames(3))
    Image.fromarray(gradient_frames(1, 40, 64)[0]).save(mixed / "00001.png")
    (tmp_path / "empty-folder").mkdir()
    (tmp_path / "clip.txt").write_text("x")
    return {
        "missing": (tmp_path / "missing.mp4", "no such video file or frame folder"),
        "empty": (tmp_path / "empty.mp4", "video file is empty"),
        "text": (tmp_path / "notes.mp4", "not a readable video"),
        "corrupt": (tmp_path / "noise.mp4", "not a readable video"),
        "too short": (short, "has 5 frames, but first frame 0, 4 frames and stride 4 need 13"),
        "mixed sizes": (mixed, "frames differ in size: 00001.png is 64x40, 00000.png is 64x48"),
        "empty folder": (tmp_path / "empty-folder", "no JPEG or PNG files"),
        "other file": (tmp_path / "clip.txt", "not a video file"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "empty", "text", "corrupt", "too short", "mixed sizes", "empty folder", "other file"]
)
def test_bad_sources_fail_clearly_and_leave_nothing(tmp_path, case):
    source, message = bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match=message) as error:
        count, stride = (4, 4) if case == "too short" else (3, 1)
        ingest_frames(source, out / "clip.zarr", 0, count, stride, (32, 24), "center")
    assert str(source) in str(error.value)
    assert leftovers(out) == []


def test_mask_count_mismatch_and_size_mismatch(tmp_path):
    source = write_folder(tmp_path / "frames", gradient_frames(4))
    group = tmp_path / "out" / "clip.zarr"
    ingest_frames(source, group, 0, 2, 1, (32, 24), "none")
    few = write_folder(tmp_path / "few", np.zeros((3, 48, 64), np.uint8))
    with pytest.raises(InputError, match=f"{few}: has 3 mask images but the source .* has 4 frames"):
        ingest_masks(few, group)
    small = write_folder(tmp_path / "small", np.zeros((4, 24, 32), np.uint8))
    with pytest.raises(InputError, match="mask is 32x24, frames are 64x48"):
        ingest_masks(small, group)
    with pytest.raises(InputError, match="masks folder not found"):
        ingest_masks(tmp_path / "nope", group)
    assert sorted(p.name for p in group.iterdir()) == ["frames", "zarr.json"]


def manifest(shared_clips: Path) -> list[dict]:
    with open(shared_clips / "MANIFEST.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_real_clips_decode_to_their_manifest_counts(shared_clips, tmp_path):
    for clip in manifest(shared_clips):
        total, (width, height) = int(clip["frames"]), map(int, clip["resolution"].split("x"))
        path = shared_clips / clip["local_path"].split(" + ")[0].replace("/*.jpg", "")
        group = tmp_path / f"{clip['clip_id']}.zarr"
        ingest_frames(path, group, first_frame=0, frames=4, stride=total // 4, size=(64, 48), crop="center")
        frames, attrs = read_array(group / "frames")
        assert attrs["source_frames"] == total, clip["clip_id"]
        assert attrs["source_size"] == [width, height], clip["clip_id"]
        assert frames.shape == (4, 48, 64, 3)
        if clip["masks"].startswith("yes"):
            ingest_masks(path.parent / "Annotations", group)
            mask, _ = read_array(group / "mask_given")
            assert 0.005 < mask.mean() < 0.6, clip["clip_id"]
        else:
            assert attrs["fps"] == pytest.approx(float(clip["fps"]), abs=0.01)
