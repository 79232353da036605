"""Which role sees which page: the one table both the navigation (app.py) and each page's own check
(context.require_role) read, so a page cannot be reached by a role the table does not give it, even if routing
changes. Plain data, no Streamlit."""

from __future__ import annotations

from pathlib import Path

from db.users import ROLES

# (file in dashboard/, title, icon, roles that see it)
PAGES = [
    ("home_page.py", "Overview", ":material/dashboard:", ROLES),
    ("ratings_page.py", "Ratings EDA", ":material/bar_chart:", ROLES),
    ("minors_page.py", "Minors review", ":material/shield_person:", ("moderator",)),
    ("models_page.py", "Model comparison", ":material/model_training:", ROLES),
    ("search_page.py", "Live search", ":material/image_search:", ROLES),
    ("explore_page.py", "Explore", ":material/scatter_plot:", ROLES),
]
HOME = "home_page.py"  # the default page, served at the root URL
WHO = {"data": "the data team", "moderator": "moderators", "product": "the product team"}


def page_roles(page: str) -> tuple[str, ...]:
    """The roles that see ``page`` (its file name or path); none for a file the table does not list."""
    name = Path(page).name
    return next((roles for file, _, _, roles in PAGES if file == name), ())


def who_sees(page: str) -> str:
    """"moderators", "the data team and moderators", ...: for the message a refused role reads."""
    return " and ".join(WHO[role] for role in page_roles(page)) or "nobody"
