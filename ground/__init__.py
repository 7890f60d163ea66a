"""The ground every other package stands on: settings, the NYSE calendar, crash points for the
crash-safety tests, the registry that declares every dataset, and the schemas of the frames that
sources return and the warehouse stores. It imports no other package of the project
(tests/test_imports.py)."""
