"""Writes the page the web server serves, as a migration would prepare a database."""
import datetime
import pathlib

page = pathlib.Path(__file__).with_name("public") / "index.html"
page.write_text(f"<p>migrated at {datetime.datetime.now():%H:%M:%S}</p>\n")
print(f"wrote {page.name}")
