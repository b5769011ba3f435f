""" "My projects" on the account page: the projects a person owns or maintains,
directly or through a group, each linked to its admin page."""

from __future__ import annotations

import re

import pytest

from tests.unit.ui.admin.conftest import Admin, sign_in

pytestmark = pytest.mark.anyio


def my_projects(page: str) -> str:
    found = re.search(r'<section aria-labelledby="my-projects-title">(.*?)</section>', page, re.S)
    assert found is not None, page
    return found.group(1)


async def test_an_owner_sees_their_project(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        section = my_projects((await client.get("/admin/account")).text)
    assert 'href="/admin/project/acme-tools/"' in section
    assert "owner" in section
    assert "through the group" not in section


async def test_a_group_member_sees_the_group_s_project(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "bob")
        section = my_projects((await client.get("/admin/account")).text)
    assert "acme-tools</a>: maintainer, through the group devs" in section


async def test_someone_without_roles_is_told_how_to_get_one(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        section = my_projects((await client.get("/admin/account")).text)
    assert "You own or maintain no project yet" in section
