"""Shadow mode: the gate every vendor write passes (``gate.py``) and where it records the
writes it holds back (``store.py``). See docs/shadow-mode.md."""
