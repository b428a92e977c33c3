"""Properties of every batch plan (issue 25, "Beyond the list"): for any photos, names,
patterns and output folders, no planned output is an input, no two outputs share a file, and
nothing that exists is replaced without ``--overwrite`` — or the plan is refused before any
work with one usage error."""

import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from stylecascade.batch import batch_jobs, skip_existing
from stylecascade.errors import UsageError
from stylecascade.job import RenderJob, output_files
from stylecascade.preset_files import load_preset

DRAFT = load_preset("draft").resolved(styles=["/paintings/starry.jpg"])
STEMS = st.text("az-x", min_size=1, max_size=4)
PHOTOS = st.lists(st.tuples(STEMS, st.sampled_from(["png", "jpg", "PNG"])), min_size=1, max_size=6)
PATTERNS = st.lists(
    st.sampled_from(["{content}", "{ext}", "{styles}", "{preset}", "z", "-x", "a"]),
    min_size=1,
    max_size=4,
).map(lambda parts: "".join(parts) + ".png")


@settings(max_examples=200, deadline=None)
@given(
    photos=PHOTOS,
    pattern=PATTERNS,
    same_folder=st.booleans(),
    existing=st.lists(STEMS, max_size=3),
    overwrite=st.booleans(),
)
def test_no_plan_eats_a_photo_shares_an_output_or_replaces_without_overwrite(
    photos, pattern, same_folder, existing, overwrite
):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        inputs = []
        for stem, ext in dict.fromkeys(photos):
            path = folder / f"{stem}.{ext}"
            if path.exists():  # the same name in another case on this file system
                continue
            path.write_bytes(b"photo " + path.name.encode())
            inputs.append(path)
        out = folder if same_folder else Path(tmp) / "out"
        out.mkdir(exist_ok=True)
        for stem in existing:
            (out / f"{stem}.png").write_bytes(b"kept")
        before = {p: p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
        template = RenderJob(content=inputs[0], output=out / "x.png", overwrite=overwrite)
        try:
            jobs = batch_jobs(inputs, template, out, pattern, DRAFT)
        except UsageError:
            return  # refused before any work: nothing written
        finally:
            assert {p: p.read_bytes() for p in before} == before
        outputs = [f for job in jobs for f in output_files(job.output)]
        resolved = [os.path.realpath(f) for f in outputs]
        assert len(set(resolved)) == len(resolved), "two jobs share an output"
        assert not set(resolved) & {os.path.realpath(p) for p in inputs}, "an output is a photo"
        for job in jobs:
            if job.output.exists() and not overwrite:
                skipped = skip_existing(job)
                assert skipped is not None and skipped.status == "skipped"
