"""Claims: each outcome a respondent says the course brought, its evidence, its reviews."""
