"""The e-invoice simulator: the fiscal e-invoice platform behind our contract (docs/simulators/einvoice.md)."""
