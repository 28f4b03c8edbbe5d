"""Coverage-guided fuzzing of the protocol parsers with atheris (see __main__.py)."""
