"""Offline analysis: backtests over recorded series and detector evaluation with the NAB rules."""
