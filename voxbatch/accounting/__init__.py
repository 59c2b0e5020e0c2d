"""What calls cost: prices, estimates, spend caps and the paid-call ledger."""
