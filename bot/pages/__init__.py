"""The incident page: one signed link per incident that shows its whole story (issue 20).

`links` mints and checks the links' tokens, `export` builds the `.json` timeline, `svg` draws
the timeline picture, `render` makes the HTML (Jinja2, autoescaped), `routes` serves them.
"""
