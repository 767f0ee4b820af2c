"""The questionnaires that ship with Attest (JSON definitions; a package so wheels include them)."""
