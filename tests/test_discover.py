"""Discovery: format sniffing, the walk's rules, output naming, the output-folder guard, shards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import pytest
from PIL import Image

import colorize_cli
from colorize_cli.discover.find import DiscoverOptions, check_out_root, discover
from colorize_cli.errors import UsageError
from colorize_cli.discover.formats import sniff_format
from colorize_cli.discover.globs import glob_matches
from colorize_cli.discover.outnames import assign_outputs
from colorize_cli.discover.shards import parse_shard, shard_of

# (format sniffed, Pillow save format, save options, image mode)
SAMPLES = {
    "jpeg": ("JPEG", "JPEG", {}, "L"),
    "png": ("PNG", "PNG", {}, "L"),
    "tiff-le": ("TIFF", "TIFF", {}, "L"),
    "tiff-be": ("TIFF", "TIFF", {}, "I;16B"),  # Pillow writes big-endian ("MM") for this mode
    "bigtiff": ("TIFF", "TIFF", {"big_tiff": True}, "L"),
    "bmp": ("BMP", "BMP", {}, "L"),
    "webp": ("WEBP", "WEBP", {}, "L"),
}


def gray(path: Path, fmt: str = "PNG", mode: str = "L", **save: object) -> Path:
    """A real little gray scan (a ramp, so encoders have something to encode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "L":
        im = Image.linear_gradient("L").resize((12, 9))
    else:
        im = Image.new(mode, (12, 9), 300)
    im.save(path, fmt, **save)
    return path


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def rels(items) -> list[str]:
    return [str(i.rel) for i in items]


def reasons(skipped) -> dict[str, str]:
    return {str(s.rel): s.reason for s in skipped}


def outs(jobs, out: Path) -> dict[str, str]:
    return {str(j.rel): j.output.relative_to(out).as_posix() for j in jobs}


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_sniff_recognises_each_format_by_content_not_name(tmp_path, kind):
    expected, pil_fmt, save, mode = SAMPLES[kind]
    p = gray(tmp_path / "scan.bin", pil_fmt, mode, **save)  # the name says nothing
    with Image.open(p) as im:  # the fixture really is what Pillow calls that format
        assert im.format == expected
    assert sniff_format(p) == expected


def test_sniff_sees_both_tiff_byte_orders_and_bigtiff(tmp_path):
    heads = {k: (tmp_path / f"{k}.bin") for k in ("tiff-le", "tiff-be", "bigtiff")}
    for k, p in heads.items():
        _, pil_fmt, save, mode = SAMPLES[k]
        gray(p, pil_fmt, mode, **save)
    # three different headers, one answer
    assert len({p.read_bytes()[:4] for p in heads.values()}) == 3
    assert {sniff_format(p) for p in heads.values()} == {"TIFF"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, these are my notes about box 12\n",
        b"BMW owners' club minutes, 1957\n",  # starts with "BM" but is no bitmap
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00",  # RIFF, but audio
        b"\x89PNG",  # a PNG signature cut short
        b"\xff\xd8",  # two bytes of JPEG
    ],
)
def test_sniff_rejects_what_is_not_an_image(tmp_path, data):
    assert sniff_format(write(tmp_path / "x.jpg", data)) is None


def test_sniff_of_a_missing_file_raises_instead_of_saying_not_an_image(tmp_path):
    with pytest.raises(FileNotFoundError):
        sniff_format(tmp_path / "gone.png")


# --------------------------------------------------------------------------- the walk


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "scans"
    gray(root / "a.jpg", "JPEG")
    gray(root / "b.png", "PNG")
    gray(root / "c.tif", "TIFF")
    gray(root / "d.bmp", "BMP")
    gray(root / "e.webp", "WEBP")
    gray(root / "box1" / "f.JPG", "JPEG")
    gray(root / "box1" / "g.tiff", "TIFF")
    gray(root / "box1" / "deep" / "h.png", "PNG")
    gray(root / "photo.dat", "PNG")  # found by content
    write(root / "notes.txt", b"box 1: beach, 1952\n")
    write(root / "empty.txt", b"")
    write(root / "broken.jpg", b"")  # a broken scan, not a non-image
    write(root / "fake.jpeg", b"this is text, not a JPEG\n")
    gray(root / ".hidden.png", "PNG")
    gray(root / ".cache" / "thumb.png", "PNG")
    return root


def test_walk_finds_scans_by_content_and_lists_the_rest(tree, tmp_path):
    out = tmp_path / "color"
    jobs, skipped = discover(tree, out, DiscoverOptions())

    assert rels(jobs) == [  # sorted folder by folder
        "a.jpg", "b.png", "box1/deep/h.png", "box1/f.JPG", "box1/g.tiff",
        "broken.jpg", "c.tif", "d.bmp", "e.webp", "fake.jpeg", "photo.dat",
    ]
    fmts = {str(j.rel): j.fmt for j in jobs}
    assert fmts["photo.dat"] == "PNG"
    assert fmts["box1/f.JPG"] == "JPEG" and fmts["d.bmp"] == "BMP" and fmts["e.webp"] == "WEBP"
    assert fmts["broken.jpg"] == "JPEG" and fmts["fake.jpeg"] == "JPEG"  # by extension: reading fails them
    assert all(j.out_fmt == (j.fmt if j.fmt != "BMP" else "PNG") for j in jobs)  # BMP holds no metadata
    assert all(j.input.is_absolute() and j.output.is_absolute() for j in jobs)
    assert all(j.input == tree / j.rel for j in jobs)

    assert reasons(skipped) == {"empty.txt": "empty file", "notes.txt": "not an image"}
    seen = rels(jobs) + rels(skipped)
    assert not [r for r in seen if "hidden" in r or ".cache" in r]  # silently ignored


def test_same_format_keeps_the_extension_spelling(tree, tmp_path):
    out = tmp_path / "color"
    jobs, _ = discover(tree, out, DiscoverOptions())
    o = outs(jobs, out)
    assert o["a.jpg"] == "a.jpg"
    assert o["box1/f.JPG"] == "box1/f.JPG"
    assert o["box1/g.tiff"] == "box1/g.tiff"
    assert o["d.bmp"] == "d.png"  # BMP cannot hold metadata nor provenance: the lossless fallback, PNG
    assert o["photo.dat"] == "photo.dat.png"  # unknown extensions stay in the name


def test_chosen_format_and_suffix_name_every_output(tree, tmp_path):
    out = tmp_path / "color"
    jobs, _ = discover(tree, out, DiscoverOptions(out_format="jpeg", suffix="_color"))
    o = outs(jobs, out)
    assert o["a.jpg"] == "a_color.jpg"
    assert o["b.png"] == "b_color.jpg"
    assert o["box1/f.JPG"] == "box1/f_color.jpg"
    assert o["box1/g.tiff"] == "box1/g_color.jpg"
    assert o["photo.dat"] == "photo.dat_color.jpg"
    assert {j.out_fmt for j in jobs} == {"JPEG"}
    assert {j.fmt for j in jobs} >= {"PNG", "TIFF", "BMP", "WEBP"}


def test_bad_options_are_usage_errors_with_a_reason():
    with pytest.raises(UsageError, match="unknown output format 'gif'"):
        DiscoverOptions(out_format="gif")
    with pytest.raises(UsageError, match="path separator"):
        DiscoverOptions(suffix="x/y")
    with pytest.raises(UsageError, match="out of range"):
        DiscoverOptions(shard=(5, 4))


def test_missing_input_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        discover(tmp_path / "nope", tmp_path / "out", DiscoverOptions())


def test_fifo_is_skipped_without_blocking(tmp_path):
    root = tmp_path / "in"
    gray(root / "a.png")
    os.mkfifo(root / "pipe.jpg")  # opening this for a sniff would hang forever
    jobs, skipped = discover(root, tmp_path / "out", DiscoverOptions())
    assert rels(jobs) == ["a.png"]
    assert reasons(skipped) == {"pipe.jpg": "not a regular file"}


def _discover_as_nobody(root: Path, out: Path) -> dict:
    """Run discover in a forked child that drops root's rights (root can read any file)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        status = 1
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            jobs, skipped = discover(root, out, DiscoverOptions())
            got = {"jobs": {str(j.rel): j.fmt for j in jobs}, "skipped": {str(s.rel): s.reason for s in skipped}}
            os.write(w, json.dumps(got).encode())
            status = 0
        except BaseException as err:  # report, do not fall back into the test runner
            os.write(w, json.dumps({"error": repr(err)}).encode())
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_unreadable_files_say_permission_denied_and_image_names_stay_jobs():
    base = Path(tempfile.mkdtemp(prefix="discover-perm-"))  # outside pytest's 0700 tmp tree
    try:
        base.chmod(0o755)
        root = base / "in"
        gray(root / "ok.png")
        locked_txt = write(root / "locked.txt", b"\x89PNG\r\n\x1a\n")
        locked_jpg = gray(root / "locked.jpg", "JPEG")
        for p in (root, root / "ok.png"):
            p.chmod(0o755)
        locked_txt.chmod(0o000)
        locked_jpg.chmod(0o000)
        got = _discover_as_nobody(root, base / "out")
        assert got == {
            "skipped": {"locked.txt": "permission denied"},
            "jobs": {"locked.jpg": "JPEG", "ok.png": "PNG"},  # locked.jpg fails later, when read
        }
    finally:
        shutil.rmtree(base)


# --------------------------------------------------------------------------- symlinks


def test_symlink_loops_end_the_walk_with_a_reason(tmp_path):
    root = tmp_path / "in"
    gray(root / "box" / "a.png")
    (root / "box" / "up").symlink_to("..")  # points at its own ancestor
    (root / "box" / "me").symlink_to(".")
    (root / "l1.png").symlink_to("l2.png")
    (root / "l2.png").symlink_to("l1.png")
    jobs, skipped = discover(root, tmp_path / "out", DiscoverOptions())
    assert rels(jobs) == ["box/a.png"]
    assert reasons(skipped) == {
        "box/me": "symlink loop",
        "box/up": "symlink loop",
        "l1.png": "symlink loop",
        "l2.png": "symlink loop",
    }


def test_linked_folder_inside_root_is_walked_once_at_its_real_path(tmp_path):
    root = tmp_path / "in"
    gray(root / "z_real" / "a.png")
    (root / "a_view").symlink_to("z_real")  # sorts first, still loses to the real folder
    jobs, skipped = discover(root, tmp_path / "out", DiscoverOptions())
    assert rels(jobs) == ["z_real/a.png"]
    assert reasons(skipped)["a_view"].startswith("symlink to a folder already walked")


def test_links_out_of_the_root_are_refused_unless_allowed(tmp_path):
    outside = tmp_path / "elsewhere"
    gray(outside / "o.png")
    gray(outside / "sub" / "p.jpg", "JPEG")
    root = tmp_path / "in"
    gray(root / "a.png")
    (root / "ext").symlink_to(outside)
    (root / "o_link.png").symlink_to(outside / "o.png")
    (root / "dangling.png").symlink_to(tmp_path / "nothing-here.png")

    jobs, skipped = discover(root, tmp_path / "out", DiscoverOptions())
    assert rels(jobs) == ["a.png"]
    r = reasons(skipped)
    assert r["ext"].startswith("symlink outside input root")
    assert r["o_link.png"].startswith("symlink outside input root")
    assert r["dangling.png"].startswith("broken symlink")

    jobs, _ = discover(root, tmp_path / "out", DiscoverOptions(allow_outside_root=True))
    assert rels(jobs) == ["a.png", "ext/o.png", "ext/sub/p.jpg", "o_link.png"]
    assert {str(j.rel): j.input for j in jobs}["ext/sub/p.jpg"] == root / "ext" / "sub" / "p.jpg"

    jobs, skipped = discover(root, tmp_path / "out", DiscoverOptions(follow_symlinks=False))
    assert rels(jobs) == ["a.png"]
    assert set(reasons(skipped).values()) == {"symlink (not followed)"}


# --------------------------------------------------------------------------- include / exclude


def test_exclude_glob_names_the_pattern_and_prunes_folders(tree, tmp_path):
    gray(tree / "box1" / "X.TIF", "TIFF")
    jobs, skipped = discover(tree, tmp_path / "out", DiscoverOptions(exclude=("*.tif",)))
    r = reasons(skipped)
    assert r["c.tif"] == "excluded by --exclude '*.tif'"
    assert r["box1/X.TIF"] == "excluded by --exclude '*.tif'"  # globs ignore case
    assert "box1/g.tiff" in rels(jobs)  # *.tif is not *.tiff

    jobs, skipped = discover(tree, tmp_path / "out", DiscoverOptions(exclude=("box1",)))
    assert not [r for r in rels(jobs) + rels(skipped) if r.startswith("box1/")]
    assert reasons(skipped)["box1"] == "folder excluded by --exclude 'box1'"


def test_include_globs_with_double_star_and_folders(tree, tmp_path):
    jobs, skipped = discover(tree, tmp_path / "out", DiscoverOptions(include=("**/*.png",)))
    assert rels(jobs) == ["b.png", "box1/deep/h.png"]  # ** also matches zero folders
    assert reasons(skipped)["a.jpg"] == "not matched by --include '**/*.png'"

    jobs, _ = discover(tree, tmp_path / "out", DiscoverOptions(include=("box1",)))
    assert rels(jobs) == ["box1/deep/h.png", "box1/f.JPG", "box1/g.tiff"]  # a matching folder includes all


def test_glob_rules():
    assert glob_matches("a/**/b.png", "a/b.png")
    assert glob_matches("a/**/b.png", "a/x/y/b.png")
    assert not glob_matches("a/**/b.png", "b.png")
    assert glob_matches("*.tif", "deep/down/x.TIF")
    assert glob_matches("drafts", "box/drafts", is_dir=True)
    assert not glob_matches("box/drafts", "other/box/drafts", is_dir=True)
    assert glob_matches("out/**", "out", is_dir=True)


# --------------------------------------------------------------------------- collisions


def test_collisions_get_distinct_outputs(tmp_path):
    root = tmp_path / "in"
    gray(root / "a.png", "PNG")
    gray(root / "a.jpg", "JPEG")
    gray(root / "a_jpg.png", "PNG")  # the first fallback name is taken by a real input
    gray(root / "b.jpg", "JPEG")
    out = tmp_path / "out"
    jobs, _ = discover(root, out, DiscoverOptions(out_format="png"))
    assert outs(jobs, out) == {
        "a.jpg": "a_jpg_2.png",
        "a.png": "a.png",
        "a_jpg.png": "a_jpg.png",
        "b.jpg": "b.png",
    }
    assert discover(root, out, DiscoverOptions(out_format="png"))[0] == jobs  # deterministic


def test_collisions_ignore_case(tmp_path):
    root = tmp_path / "in"
    gray(root / "A.png")
    gray(root / "a.png")
    gray(root / "a.PNG")
    out = tmp_path / "out"
    jobs, _ = discover(root, out, DiscoverOptions())
    names = [j.output.name for j in jobs]
    assert len({n.casefold() for n in names}) == 3
    assert outs(jobs, out)["A.png"] == "A.png"  # first in sorted order keeps the plain name


def test_renamed_outputs_never_take_another_inputs_plain_name():
    got = assign_outputs([("a.jpg", "JPEG"), ("a.tif", "TIFF"), ("a_tif.jpg", "JPEG")], "png", "")
    assert got == ["a.png", "a_tif_2.png", "a_tif.png"]
    got = assign_outputs([("x/a.jpg", "JPEG"), ("x/a.png", "PNG")], "png", "_c")
    assert got == ["x/a_jpg_c.png", "x/a_c.png"]


# --------------------------------------------------------------------------- output folder


def test_output_inside_input_is_refused_with_the_fix(tree):
    with pytest.raises(UsageError) as e:
        check_out_root(tree, tree / "color", ())
    msg = str(e.value)
    assert "inside the input folder" in msg and "--exclude 'color'" in msg
    with pytest.raises(UsageError, match="inside the input folder"):
        discover(tree, tree / "color", DiscoverOptions())
    with pytest.raises(UsageError, match="is the input folder"):
        check_out_root(tree, tree / "box1" / "..", ())
    with pytest.raises(UsageError, match="input folder .* is inside the output folder"):
        check_out_root(tree, tree.parent, ())


def test_output_inside_input_through_a_symlink_is_refused(tree, tmp_path):
    (tmp_path / "shortcut").symlink_to(tree / "box1")
    with pytest.raises(UsageError, match=r"inside the input folder .*resolves to .*box1"):
        check_out_root(tree, tmp_path / "shortcut" / "color", ())


def test_excluded_output_folder_inside_input_is_allowed_and_not_walked(tree, tmp_path):
    gray(tree / "results" / "old" / "a.png")  # an earlier run's output
    check_out_root(tree, tree / "results" / "old", ("results",))
    check_out_root(tree, tree / ".color", ())  # hidden: never walked either
    jobs, _ = discover(tree, tree / "results" / "old", DiscoverOptions(exclude=("results",)))
    assert not [r for r in rels(jobs) if r.startswith("results")]


def test_walk_never_enters_the_output_folder_even_through_a_link(tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    gray(root / "a.png")
    gray(out / "a.png")
    (root / "results").symlink_to(out)
    jobs, skipped = discover(root, out, DiscoverOptions(allow_outside_root=True))
    assert rels(jobs) == ["a.png"]
    assert reasons(skipped) == {"results": "symlink to the output folder"}


# --------------------------------------------------------------------------- shards


def test_parse_shard():
    assert parse_shard("2/4") == (2, 4)
    assert parse_shard(" 1 / 1 ") == (1, 1)
    for bad, msg in [("0/4", "between 1 and 4"), ("5/4", "between 1 and 4"), ("x", "K/N"),
                     ("2", "K/N"), ("-1/4", "K/N"), ("1/0", "at least 1")]:
        with pytest.raises(UsageError, match=msg):
            parse_shard(bad)


def test_four_shards_cover_every_input_once_with_the_same_names(tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    for i in range(30):  # pairs that collide under --format png, split across shards by chance
        gray(root / f"s{i:02d}.png")
        gray(root / f"s{i:02d}.jpg", "JPEG")
    for i in range(8):
        write(root / f"n{i}.txt", b"not a scan")
    opts = dict(out_format="png")
    full_jobs, full_skipped = discover(root, out, DiscoverOptions(**opts))
    parts = [discover(root, out, DiscoverOptions(shard=(k, 4), **opts)) for k in range(1, 5)]

    shard_jobs = [j for jobs, _ in parts for j in jobs]
    assert sorted(rels(shard_jobs)) == sorted(rels(full_jobs))  # each exactly once
    assert len(set(rels(shard_jobs))) == len(full_jobs) == 60
    assert {j.rel: j.output for j in shard_jobs} == {j.rel: j.output for j in full_jobs}
    assert sorted(rels(s for _, sk in parts for s in sk)) == sorted(rels(full_skipped))
    assert all(jobs for jobs, _ in parts)
    for k, (jobs, _) in enumerate(parts, start=1):
        assert all(shard_of(j.rel, 4) == k for j in jobs)


def test_shard_hash_is_stable_across_processes_and_spread_evenly():
    names = [f"box{i // 50}/scan_{i:05d}.tif" for i in range(2000)]
    here = [shard_of(PurePosixPath(n), 4) for n in names]
    code = (
        "import json,sys;from pathlib import PurePosixPath as P;from colorize_cli.discover.shards import shard_of;"
        "print(json.dumps([shard_of(P(n),4) for n in json.load(sys.stdin)]))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(Path(colorize_cli.__file__).parents[1]))
    res = subprocess.run([sys.executable, "-c", code], input=json.dumps(names), env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(res.stdout) == here
    counts = [here.count(k) for k in (1, 2, 3, 4)]
    assert min(counts) > 400 and max(counts) < 600, counts


# --------------------------------------------------------------------------- speed


def test_twenty_thousand_files_walk_in_seconds(tmp_path):
    root = tmp_path / "big"
    for d in range(40):
        folder = root / f"box{d:02d}"
        folder.mkdir(parents=True)
        for i in range(500):
            open(folder / f"page{i:04d}.txt", "wb").close()
    t0 = time.perf_counter()
    jobs, skipped = discover(root, tmp_path / "out", DiscoverOptions())
    elapsed = time.perf_counter() - t0
    assert jobs == [] and len(skipped) == 20_000
    assert {s.reason for s in skipped} == {"empty file"}
    assert elapsed < 10.0, f"walking 20,000 files took {elapsed:.1f} s"


def test_page_files_and_their_first_page_name() -> None:
    from pathlib import Path

    from colorize_cli.discover.outnames import first_page_name, page_files

    assert page_files(Path("o/a.png"), 3) == [Path("o/a.png"), Path("o/a_page2.png"), Path("o/a_page3.png")]
    assert page_files(Path("o/a.TIF"), 3) == [Path("o/a.TIF")]  # a TIFF holds every page
    assert page_files(Path("o/a.png"), None) == page_files(Path("o/a.png"), 1) == [Path("o/a.png")]
    assert [first_page_name(n) for n in ("a_page2.png", "a_page12.jp2", "a_page1.png", "a_page0.png", "x_page3", "a.png")] == [
        "a.png", "a.jp2", "a_page1.png", "a_page0.png", "x", "a.png"]
