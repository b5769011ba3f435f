"""Distribution filenames."""

from __future__ import annotations

import pytest
from packaging.version import Version

from packyard.dists.filenames import parse_filename
from packyard.errors import InvalidDistribution


@pytest.mark.parametrize(
    ("filename", "name", "version", "packagetype", "python_version"),
    [
        ("acme_core-1.0-py3-none-any.whl", "acme-core", "1.0", "bdist_wheel", "py3"),
        (
            "Acme.Core-2.0rc1-1-py2.py3-none-any.whl",
            "acme-core",
            "2.0rc1",
            "bdist_wheel",
            "py2.py3",
        ),
        ("acme-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", "acme", "1.0", "bdist_wheel", "cp312"),
        ("acme_core-1.0.tar.gz", "acme-core", "1.0", "sdist", "source"),
        ("acme_core-1.0.zip", "acme-core", "1.0", "sdist", "source"),
        ("Acme-Core-1.0.post1.tar.gz", "acme-core", "1.0.post1", "sdist", "source"),
    ],
)
def test_valid_filenames_parse(
    filename: str, name: str, version: str, packagetype: str, python_version: str
) -> None:
    dist = parse_filename(filename)
    assert (dist.filename, dist.name, dist.version) == (filename, name, Version(version))
    assert (dist.packagetype, dist.python_version) == (packagetype, python_version)


@pytest.mark.parametrize(
    ("filename", "message"),
    [
        ("", "1 to 255 characters"),
        ("a" * 250 + "-1.0.tar.gz", "1 to 255 characters"),
        ("../acme-1.0.tar.gz", "may not contain"),
        ("sub/acme-1.0.tar.gz", "may not contain"),
        ("sub\\acme-1.0.tar.gz", "may not contain"),
        ("acme-1.0.tar.gz\n", "may not contain"),
        ("acme\x00-1.0.tar.gz", "may not contain"),
        ("acme..x-1.0.tar.gz", "may not contain"),
        (".acme-1.0.tar.gz", "may not contain"),
        ("acme-1.0.exe", "Invalid file extension"),
        ("acme-1.0.tar.bz2", "Invalid file extension"),
        ("acme-1.0.whl", "Invalid wheel filename"),
        ("acme-not_a_version-py3-none-any.whl", "Invalid wheel filename"),
        ("acme.tar.gz", "Invalid sdist filename"),
    ],
)
def test_invalid_filenames_are_refused_with_a_reason(filename: str, message: str) -> None:
    with pytest.raises(InvalidDistribution, match=message):
        parse_filename(filename)
