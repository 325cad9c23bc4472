"""main_api's admin says which service it is."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_the_admin_names_the_main_api_service() -> None:
    page = Client().get("/admin/login/").content.decode()

    assert "<title>Log in | authmesh: main API</title>" in page
    assert '<div id="site-name"><a href="/admin/">authmesh: main API</a></div>' in page
    assert "Django administration" not in page
