"""Campaigns: who gets which questionnaire when, and their invitations."""
