"""The browser service's model: what the web pages show, computed from the chain's data.

`metadata` turns a METADATA file into display values, `releases` turns a
project page into release history and file rows, `catalog` reads the
in-house store for the home page, and `service` puts them together for the
routes in `routes/ui/`.
"""
