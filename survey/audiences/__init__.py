"""The people we survey (stakeholders) and the import of audience files."""
