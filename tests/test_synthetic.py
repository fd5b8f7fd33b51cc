"""The synthetic renderer's truth must agree with itself, with the pose and with the camera."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import vidmp3.scene as scene
import vidmp3.synthetic as synthetic
from vidmp3.errors import InputError
from vidmp3.scene import SHAPES, Camera, SubjectSpec, default_camera, pose_matrix, read_truth
from vidmp3.synthetic import make_trajectory, render_clip, true_matches, write_clip

SIZE = 64


def subject_of(shape: str, texture: str = "gradient") -> SubjectSpec:
    size = (0.8, 0.8, 0.8) if shape in ("cube", "sphere") else (0.55, 0.9, 0.7)
    return SubjectSpec(shape=shape, size=size, texture=texture)


@pytest.fixture(scope="module", params=SHAPES)
def shape_clip(request):
    subject = subject_of(request.param)
    return render_clip(subject, make_trajectory(4, seed=3, subject=subject), SIZE, SIZE)


def to_world(clip, index, points):
    matrix = pose_matrix(clip.poses[index])
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def surface_residual(shape: str, unit: np.ndarray) -> np.ndarray:
    """Convex shapes as {g <= 0} in unit space (object coords / half extents): g is 0 on the surface."""
    x, y, z = unit.T
    radial = np.hypot(x, z)
    if shape in ("cube", "box"):
        return np.abs(unit).max(1) - 1.0
    if shape == "sphere":
        return np.linalg.norm(unit, axis=1) - 1.0
    if shape == "cylinder":
        return np.maximum(radial, np.abs(y)) - 1.0
    if shape == "cone":
        return np.maximum(radial - (1.0 - y) / 2.0, -1.0 - y)
    return np.maximum.reduce([-1.0 - y, 2.0 * np.abs(x) + y - 1.0, 2.0 * np.abs(z) + y - 1.0])


def outline_points(shape: str) -> np.ndarray:
    """Unit-space points whose convex hull is the shape (circles as fine polygons)."""
    angle = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)
    circle = np.stack([np.cos(angle), np.zeros_like(angle), np.sin(angle)], axis=1)
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T.astype(float)
    if shape in ("cube", "box"):
        return corners
    if shape == "pyramid":
        return np.array([[0, 1, 0], [-1, -1, -1], [-1, -1, 1], [1, -1, -1], [1, -1, 1]], float)
    if shape == "cylinder":
        return np.concatenate([circle + [0, 1, 0], circle - [0, 1, 0]])
    if shape == "cone":
        return np.concatenate([circle - [0, 1, 0], [[0, 1, 0]]])
    golden = np.pi * (3.0 - np.sqrt(5.0))
    height = np.linspace(-1.0, 1.0, 4000)
    radius = np.sqrt(1.0 - height**2)
    return np.stack([radius * np.cos(golden * np.arange(4000)), height, radius * np.sin(golden * np.arange(4000))], 1)


def test_object_coords_project_onto_their_own_pixel_at_their_depth(shape_clip):
    clip = shape_clip
    for index in range(len(clip.poses)):
        rows, cols = np.nonzero(clip.mask[index])
        assert len(rows) > 50
        points = clip.object_coords[index, rows, cols].astype(np.float64)
        pixels, z = clip.camera.project(to_world(clip, index, points))
        # The subject sample nearest the pixel centre is at most 1/3 pixel away per axis (supersample 3).
        assert np.abs(pixels - np.stack([cols, rows], 1)).max() < 0.34
        np.testing.assert_allclose(z, clip.depth[index, rows, cols], rtol=1e-5)


def test_object_coords_lie_on_the_subject_surface(shape_clip):
    clip = shape_clip
    unit = clip.object_coords[clip.mask].astype(np.float64) / clip.subject.half_extents
    assert np.abs(surface_residual(clip.subject.shape, unit)).max() < 1e-4


def test_mask_matches_the_projected_silhouette(shape_clip):
    """Every shape is convex: its silhouette is the convex hull of its projected outline."""
    clip = shape_clip
    outline = outline_points(clip.subject.shape) * clip.subject.half_extents
    for index in range(len(clip.poses)):
        pixels, _ = clip.camera.project(to_world(clip, index, outline))
        hull = cv2.convexHull(pixels.astype(np.float32))
        rows, cols = np.mgrid[:SIZE, :SIZE]
        centres = np.stack([cols.ravel(), rows.ravel()], 1).astype(np.float32)
        distance = np.array([cv2.pointPolygonTest(hull, (float(u), float(v)), True) for u, v in centres])
        distance = distance.reshape(SIZE, SIZE)  # > 0 inside the silhouette
        assert clip.mask[index][distance > 0.75].all()
        assert not clip.mask[index][distance < -0.75].any()


def test_fully_covered_pixels_show_the_point_at_their_centre(shape_clip):
    clip = shape_clip
    inside = clip.coverage == 1.0
    rows, cols = np.nonzero(inside[0])
    pixels, _ = clip.camera.project(to_world(clip, 0, clip.object_coords[0, rows, cols].astype(np.float64)))
    np.testing.assert_allclose(pixels, np.stack([cols, rows], 1), atol=1e-3)


def surface_normal(shape: str, unit: np.ndarray) -> np.ndarray:
    """Outward unit-space normal of the face a surface point lies on."""
    x, y, z = unit.T
    radial = np.hypot(x, z)
    if shape in ("cube", "box"):
        face = np.abs(unit).argmax(1)
        return np.eye(3)[face] * np.sign(unit[np.arange(len(unit)), face])[:, None]
    if shape == "sphere":
        return unit
    down = np.tile([0.0, -1.0, 0.0], (len(unit), 1))
    if shape == "cylinder":
        side = np.stack([x / radial, np.zeros_like(y), z / radial], 1)
        return np.where((radial > np.abs(y))[:, None], side, np.sign(y)[:, None] * [[0.0, 1.0, 0.0]])
    if shape == "cone":
        side = np.stack([x / radial, np.full_like(y, 0.5), z / radial], 1)
        return np.where((radial - (1.0 - y) / 2.0 > -1.0 - y)[:, None], side, down)
    faces = np.stack([-1.0 - y, 2.0 * np.abs(x) + y - 1.0, 2.0 * np.abs(z) + y - 1.0], 1).argmax(1)
    slanted_x = np.stack([2.0 * np.sign(x), np.ones_like(y), np.zeros_like(z)], 1)
    slanted_z = np.stack([np.zeros_like(x), np.ones_like(y), 2.0 * np.sign(z)], 1)
    return np.select([faces[:, None] == 0, faces[:, None] == 1], [down, slanted_x], slanted_z)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("texture", ["gradient", "plain"])
def test_subject_colour_is_its_texture_lit_by_lambert_and_ambient(shape, texture):
    """With one ray per pixel a subject pixel is exactly its surface point's shaded colour."""
    subject = subject_of(shape, texture)
    # Tilted towards the camera so the bottom shows, then upright-ish so the top and sides show.
    poses = np.array([[0.0, 0.8, 0.0, -1.9, 0.2, 0.0], [0.1, 0.7, 0.2, 0.3, 0.5, 0.2]])
    clip = render_clip(subject, poses, 48, 48, supersample=1)
    points = clip.object_coords[clip.mask].astype(np.float64)
    unit = points / subject.half_extents
    rotations = np.stack([pose_matrix(pose)[:3, :3] for pose in clip.poses])[np.nonzero(clip.mask)[0]]
    normals = surface_normal(shape, unit) / subject.half_extents
    normals = np.einsum("nij,nj->ni", rotations, normals / np.linalg.norm(normals, axis=1, keepdims=True))
    lambert = np.clip(normals @ synthetic.LIGHT_DIRECTION, 0.0, 1.0)
    albedo = (unit + 1.0) / 2.0 if texture == "gradient" else np.asarray(subject.colour)
    expected = albedo * (synthetic.AMBIENT + synthetic.DIFFUSE * lambert)[:, None] * 255.0
    error = np.abs(clip.frames[clip.mask] - expected).max(1)
    assert np.mean(error <= 0.51) > 0.99  # a few points sit on an edge between faces


def test_mask_coverage_coords_and_gradient_agree(shape_clip):
    clip = shape_clip
    assert np.array_equal(clip.mask, np.isfinite(clip.object_coords).all(-1))
    assert np.array_equal(clip.mask, clip.coverage >= 0.5)
    assert np.isnan(clip.object_coords[~clip.mask]).all()
    expected = (clip.object_coords[clip.mask] / clip.subject.half_extents + 1.0) / 2.0
    np.testing.assert_allclose(clip.gradient[clip.mask], expected, atol=1e-6)
    assert (clip.gradient[~clip.mask] == 0).all()
    assert clip.gradient.min() >= -1e-6 and clip.gradient.max() <= 1 + 1e-6
    # The subject stands in front of the background it hides.
    assert np.isfinite(clip.depth[clip.mask]).all()
    assert ((clip.coverage > 0) & (clip.coverage < 1)).any()  # anti-aliased edges


def test_one_surface_point_keeps_its_gradient_colour_in_every_frame():
    """Track frame-0 points by the pose: the colour found there later names the same point."""
    subject = subject_of("cube")
    clip = render_clip(subject, make_trajectory(6, seed=11, motion="small"), SIZE, SIZE)
    eroded = cv2.erode(clip.mask[0].astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    rows, cols = np.nonzero(eroded)
    picks = np.linspace(0, len(rows) - 1, 12).astype(int)
    colours = clip.gradient[0, rows[picks], cols[picks]].astype(np.float64)
    points = (colours * 2.0 - 1.0) * subject.half_extents
    checked = 0
    for index in range(1, len(clip.poses)):
        pixels, z = clip.camera.project(to_world(clip, index, points))
        column, row = np.round(pixels).astype(int).T
        visible = clip.mask[index, row, column] & np.isclose(clip.depth[index, row, column], z, rtol=0.02)
        found = (clip.gradient[index, row, column].astype(np.float64) * 2.0 - 1.0) * subject.half_extents
        found_pixels, _ = clip.camera.project(to_world(clip, index, found))
        # Both the tracked point and the point with the colour found there lie in the same pixel.
        assert np.linalg.norm(found_pixels - pixels, axis=1)[visible].max() < 1.0
        # Face-on, half a pixel moves the gradient of a ~25 px cube by ~0.02; grazing faces more.
        assert np.median(np.abs(clip.gradient[index, row, column][visible] - colours[visible])) < 0.03
        checked += visible.sum()
    assert checked >= 30


def test_true_matches_lead_to_the_same_surface_point_in_the_reference_frame():
    """With one ray per pixel, interpolating frame 0's object coords at a match gives the point back."""
    subject = subject_of("box")
    clip = render_clip(subject, make_trajectory(5, seed=9, motion="small", subject=subject), SIZE, SIZE, supersample=1)
    matches = true_matches(clip, reference=0)
    assert np.array_equal(np.isfinite(matches).all(-1), np.isfinite(matches).any(-1))
    assert not np.isfinite(matches[~clip.mask]).any()
    rows, cols = np.nonzero(clip.mask[0])
    np.testing.assert_allclose(matches[0, rows, cols], np.stack([cols, rows], 1), atol=1e-3)
    found = np.isfinite(matches[1:]).all(-1)
    assert found.sum() > 0.95 * clip.mask[1:].sum()  # a small turn hides almost nothing

    frame, rows, cols = np.nonzero(found)
    points = clip.object_coords[1:][frame, rows, cols]
    u, v = matches[1:][frame, rows, cols].T
    left, top = np.floor(u).astype(int), np.floor(v).astype(int)
    fu, fv = (u - left)[:, None], (v - top)[:, None]
    inner = (left >= 0) & (top >= 0) & (left + 1 < SIZE) & (top + 1 < SIZE)
    left, top, fu, fv, points = left[inner], top[inner], fu[inner], fv[inner], points[inner]
    corners = [clip.object_coords[0, top + dy, left + dx] for dy in (0, 1) for dx in (0, 1)]
    unit = [np.nan_to_num(c / subject.half_extents) for c in corners]
    faces = [2 * np.abs(c).argmax(1) + (c[np.arange(len(c)), np.abs(c).argmax(1)] > 0) for c in unit]
    one_face = np.isfinite(np.stack(corners)).all((0, 2)) & np.all([f == faces[0] for f in faces], axis=0)
    interpolated = (corners[0] * (1 - fu) + corners[1] * fu) * (1 - fv) + (corners[2] * (1 - fu) + corners[3] * fu) * fv
    assert one_face.sum() > 200
    np.testing.assert_allclose(interpolated[one_face], points[one_face], atol=2e-3)


def test_true_matches_drop_points_hidden_in_the_reference_frame():
    subject = subject_of("box")
    clip = render_clip(subject, make_trajectory(9, seed=9, motion="large", subject=subject), SIZE, SIZE)
    shown = np.isfinite(true_matches(clip, reference=0)).all(-1).sum(axis=(1, 2)) / clip.mask.sum(axis=(1, 2))
    assert shown[0] == 1.0 and shown.min() < 0.1  # the box turns its visible faces away


def test_same_seed_same_clip_and_other_seeds_differ():
    subject = subject_of("cylinder", texture="checker")
    first = render_clip(subject, make_trajectory(3, seed=5), 32, 32, background_seed=2)
    again = render_clip(subject, make_trajectory(3, seed=5), 32, 32, background_seed=2)
    for name in ("frames", "depth", "mask", "coverage", "gradient", "poses"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.allclose(make_trajectory(8, seed=5), make_trajectory(8, seed=6))
    other_background = render_clip(subject, first.poses, 32, 32, background_seed=3)
    assert np.array_equal(other_background.mask, first.mask)
    assert not np.array_equal(other_background.frames[~first.mask], first.frames[~first.mask])


@pytest.mark.parametrize("motion", ["large", "small"])
def test_subject_stays_in_view_and_on_or_above_the_ground(motion):
    subject = SubjectSpec()
    camera = default_camera(96, 64)
    corners = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1], indexing="ij")).reshape(3, -1).T * subject.half_extents
    lowest = []
    for seed in range(40):
        for pose in make_trajectory(32, seed=seed, motion=motion):
            matrix = pose_matrix(pose)
            world = corners @ matrix[:3, :3].T + matrix[:3, 3]
            lowest.append(world[:, 1].min())
            pixels, z = camera.project(world)
            assert (z > 0).all()
            assert (pixels >= 0).all() and (pixels[:, 0] <= 95).all() and (pixels[:, 1] <= 63).all()
    assert min(lowest) > -1e-9  # a cube's corners are its lowest points
    assert np.mean(np.array(lowest) < 1e-9) > 0.05  # it rests on the ground some of the time
    clip = render_clip(subject, make_trajectory(8, seed=0, motion=motion), 64, 96, camera=camera)
    assert clip.mask.any(axis=(1, 2)).all()
    border = np.ones((64, 96), bool)
    border[1:-1, 1:-1] = False
    assert not clip.mask[:, border].any()


@pytest.mark.parametrize("shape", SHAPES)
def test_resting_subject_touches_but_does_not_enter_the_ground(shape):
    subject = subject_of(shape)
    outline = outline_points(shape) * subject.half_extents
    heights = []
    for pose in make_trajectory(64, seed=2, motion="large", subject=subject):
        matrix = pose_matrix(pose)
        heights.append((outline @ matrix[:3, :3].T + matrix[:3, 3])[:, 1].min())
    assert min(heights) > -1e-9 and min(heights) < 1e-2


def test_large_motion_moves_and_turns_more_than_small():
    def spread(motion):
        poses = np.stack([make_trajectory(32, seed=seed, motion=motion) for seed in range(10)])
        return np.ptp(poses[:, :, :3], axis=1).mean(), np.ptp(poses[:, :, 3:], axis=1).mean()

    large, small = spread("large"), spread("small")
    assert large[0] > 3 * small[0] and large[1] > 3 * small[1]
    assert large[1] > 1.0  # substantial rotation (radians per axis over the clip)


def test_trajectory_is_smooth():
    poses = make_trajectory(64, seed=4, motion="large")
    steps = np.abs(np.diff(poses, axis=0))
    assert steps[:, :3].max() < 0.15 and steps[:, 3:].max() < 0.25
    # x, z and the angles curve gently; the height bounces off the ground when the subject lands.
    assert np.abs(np.diff(poses[:, [0, 2, 3, 4, 5]], n=2, axis=0)).max() < 0.02


def test_pose_matrix_uses_extrinsic_xyz_euler_angles():
    pose = np.array([0.1, 0.2, 0.3, 0.4, -0.5, 0.6])
    matrix = pose_matrix(pose)
    np.testing.assert_allclose(matrix[:3, :3], Rotation.from_euler("xyz", pose[3:]).as_matrix(), atol=1e-12)
    np.testing.assert_allclose(matrix[:3, 3], pose[:3])


def test_camera_looking_at_puts_the_target_in_the_image_centre():
    camera = Camera.looking_at((1.0, 2.0, 3.0), (0.0, 0.5, 0.0), 60.0, 48, 32)
    pixels, z = camera.project(np.array([[0.0, 0.5, 0.0], [0.0, 5.0, 0.0]]))
    np.testing.assert_allclose(pixels[0], [23.5, 15.5], atol=1e-9)
    np.testing.assert_allclose(z[0], np.linalg.norm([1.0, 1.5, 3.0]))
    assert pixels[1, 1] < 15.5  # world up is image up
    np.testing.assert_allclose(camera.centre, [1.0, 2.0, 3.0])


def test_bad_input_is_refused_with_a_named_problem(tmp_path):
    with pytest.raises(InputError, match="shape"):
        SubjectSpec(shape="torus")
    with pytest.raises(InputError, match="cube"):
        SubjectSpec(shape="cube", size=(1.0, 2.0, 1.0))
    with pytest.raises(InputError, match="texture"):
        SubjectSpec(texture="marble")
    with pytest.raises(InputError, match="poses"):
        render_clip(SubjectSpec(), np.zeros((3, 5)), 32, 32)
    with pytest.raises(InputError, match="multiples of 8"):
        render_clip(SubjectSpec(), make_trajectory(2, seed=0), 30, 32)
    with pytest.raises(InputError, match="motion"):
        make_trajectory(4, seed=0, motion="huge")
    with pytest.raises(InputError, match="camera size"):
        render_clip(SubjectSpec(), make_trajectory(2, seed=0), 32, 32, camera=default_camera(64, 32))
    with pytest.raises(InputError, match="fps"):
        clip = render_clip(SubjectSpec(), make_trajectory(1, seed=0), 16, 16)
        write_clip(clip, tmp_path / "a.mp4", tmp_path / "m", tmp_path / "t.zarr", fps=0)
    with pytest.raises(InputError, match="truth"):
        read_truth(tmp_path / "missing.zarr")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def small_clip():
    subject = subject_of("pyramid", texture="checker")
    return render_clip(subject, make_trajectory(5, seed=8), 48, 64, camera=default_camera(64, 48))


def test_write_clip_round_trip(tmp_path, small_clip):
    clip = small_clip
    video, masks, truth = tmp_path / "clip.mp4", tmp_path / "masks", tmp_path / "truth.zarr"
    write_clip(clip, video, masks, truth, fps=12)

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 12
        decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(stream)])
    assert decoded.shape == clip.frames.shape
    mse = np.mean((decoded.astype(np.float64) - clip.frames) ** 2)
    assert 10 * np.log10(255.0**2 / mse) > 35.0

    files = sorted(masks.iterdir())
    assert [f.name for f in files] == [f"{i:05d}.png" for i in range(len(clip.frames))]
    read_masks = np.stack([cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files])
    assert set(np.unique(read_masks)) <= {0, 255}
    np.testing.assert_array_equal(read_masks == 255, clip.mask)

    stored = read_truth(truth)
    for name in scene.TRUTH_ARRAYS:
        np.testing.assert_array_equal(getattr(stored, name), getattr(clip, name))
    assert stored.subject == clip.subject
    np.testing.assert_array_equal(stored.camera.K, clip.camera.K)
    np.testing.assert_array_equal(stored.camera.world_to_camera, clip.camera.world_to_camera)
    assert scene.read_group_attrs(truth)["fps"] == 12


def test_failed_write_leaves_nothing(tmp_path, small_clip, monkeypatch):
    real_write_array = scene.write_array

    def fail_on_gradient(path, data, attrs=None):
        if path.name == "gradient":
            raise OSError("disk full")
        real_write_array(path, data, attrs)

    monkeypatch.setattr(scene, "write_array", fail_on_gradient)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        write_clip(small_clip, out / "clip.mp4", out / "masks", out / "truth.zarr", fps=12)
    assert list(out.iterdir()) == []


BACKDROP = scene.Backdrop(sky=(0.8, 0.8, 0.8), ground=(0.5, 0.5, 0.5))


def test_backdrop_scene_is_flat_and_shadowless():
    """Off the subject a backdrop frame is exactly the empty scene: no shadow, no shading."""
    subject = subject_of("cylinder", texture="plain")
    clip = render_clip(subject, make_trajectory(4, seed=1, subject=subject), 32, 32, backdrop=BACKDROP)
    empty = synthetic.render_empty(32, 32, backdrop=BACKDROP)
    edge = clip.coverage > 0
    np.testing.assert_array_equal(clip.frames[~edge], np.broadcast_to(empty, clip.frames.shape)[~edge])
    assert {tuple(c) for c in empty.reshape(-1, 3)} >= {(204, 204, 204), (128, 128, 128)}
    assert len({tuple(c) for c in empty.reshape(-1, 3)}) <= 2 + 32  # sky, ground and the horizon's blends
    scene = render_clip(subject, clip.poses, 32, 32)
    np.testing.assert_array_equal(scene.mask, clip.mask)


@pytest.mark.parametrize("texture", ["plain", "gradient"])
def test_stills_are_the_frames_render_clip_draws(texture):
    subjects = [subject_of(shape, texture) for shape in SHAPES for _ in range(3)]
    poses = synthetic.random_poses(subjects, seed=4)
    frames, masks = synthetic.render_stills(subjects, poses, 32, 32, BACKDROP, chunk=2)
    for index, subject in enumerate(subjects):
        clip = render_clip(subject, poses[index : index + 1], 32, 32, backdrop=BACKDROP)
        np.testing.assert_array_equal(masks[index], clip.mask[0])
        assert np.abs(frames[index].astype(int) - clip.frames[0]).max() <= 1


@pytest.mark.parametrize("tilt", [None, 0.3])
def test_random_poses_cover_the_trajectory_ranges(tilt):
    subjects = [subject_of(shape) for shape in SHAPES] * 50
    poses = synthetic.random_poses(subjects, seed=2, reach=0.5, tilt=tilt)
    paths = np.concatenate([make_trajectory(32, seed, subject=subjects[seed], reach=0.5, tilt=tilt) for seed in range(40)])
    for axis in (0, 2):  # stills reach as far as paths go, and no farther
        assert np.abs(poses[:, axis]).max() <= np.abs(paths[:, axis]).max() + 1e-9
        assert np.abs(poses[:, axis]).max() > 0.9 * np.abs(paths[:, axis]).max()
    resting = np.array([synthetic.resting_height(s, pose_matrix(p)[:3, :3]) for s, p in zip(subjects, poses)])
    assert (poses[:, 1] >= resting - 1e-12).all() and np.mean(poses[:, 1] - resting < 1e-12) > 0.1
    if tilt is not None:
        assert np.abs(poses[:, [3, 5]]).max() <= tilt and np.abs(paths[:, [3, 5]]).max() <= tilt + 1e-12
        assert np.ptp(poses[:, 4]) > 5.0  # free spin about the vertical axis
    assert not np.array_equal(poses, synthetic.random_poses(subjects, seed=3, reach=0.5, tilt=tilt))
    np.testing.assert_array_equal(poses, synthetic.random_poses(subjects, seed=2, reach=0.5, tilt=tilt))


def test_reach_scales_the_path_and_tilt_keeps_it_upright():
    full = make_trajectory(16, seed=5)
    half = make_trajectory(16, seed=5, reach=0.5)
    np.testing.assert_allclose(half[:, [0, 2]], 0.5 * full[:, [0, 2]])
    np.testing.assert_array_equal(half[:, 3:], full[:, 3:])
    upright = make_trajectory(16, seed=5, tilt=0.2)
    np.testing.assert_array_equal(upright[:, [0, 2, 4]], full[:, [0, 2, 4]])  # same path and spin
    assert np.abs(upright[:, [3, 5]]).max() <= 0.2 and np.ptp(upright[:, [3, 5]], axis=0).min() > 0.05


def test_new_render_options_refuse_bad_input():
    with pytest.raises(InputError, match="backdrop sky"):
        scene.Backdrop(sky=(1.2, 0.0, 0.0), ground=(0.5, 0.5, 0.5))
    with pytest.raises(InputError, match="reach"):
        make_trajectory(4, seed=0, reach=0.0)
    with pytest.raises(InputError, match="tilt"):
        synthetic.random_poses([SubjectSpec()], seed=0, tilt=-0.1)
    with pytest.raises(InputError, match="2 subjects for 1 poses"):
        synthetic.render_stills([SubjectSpec()] * 2, np.zeros((1, 6)), 32, 32, BACKDROP)
