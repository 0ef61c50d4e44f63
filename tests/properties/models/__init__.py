"""Per-family property models: the Python statement of each contract family's rules and records.

Each family's state machine (``tests/properties/test_<family>_invariants.py``) and the
all-families machine (``test_all_families.py``) import their models from here, so that one model
of a family is checked both alone and among the others; no test module imports another's classes.
``common`` holds what the models share (outcomes, token moves, days, weighted strategies).
"""
