"""The top of the house: the `smallcaps` command line (cli) and what only it uses: SQL queries and
their output formats (query, output), `status`, `dq`, and the generated docs/marts.md (docs_marts)."""
