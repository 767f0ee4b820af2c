"""Questionnaire definitions: versioned, validated, frozen once used."""
