"""Engine conformance: PyTorch's OpInfo samples run through chainrule (see ``test_opinfo.py``)."""
