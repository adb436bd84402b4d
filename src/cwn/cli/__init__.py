"""The command line: the operators' and scripts' contract (DESIGN.md section 7)."""
