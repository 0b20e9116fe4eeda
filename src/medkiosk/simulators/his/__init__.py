"""The HIS simulator: a demo hospital behind the HIS gateway contract (docs/simulators/his.md)."""
