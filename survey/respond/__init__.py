"""The respondent side: the emailed link, the survey form, save, resume, submit."""
