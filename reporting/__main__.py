"""`python -m reporting results`: re-render a results folder's pages and figures (page.py)."""

from lib.cli import guard
from reporting.page import main

guard(main)
