"""Large data sets, made by PostgreSQL itself (generate_series): a million rows in
seconds, without going through the code being measured."""
from __future__ import annotations

from bench.harness import Environment

ACTIVITIES = ("employed_full_time", "employed_part_time", "self_employed", "continuing_education",
              "volunteering", "seeking", "not_seeking")
OUTCOMES = ("new_job", "changed_employer", "promotion", "raise", "business_created")
CLAIM_STATES = ("submitted", "in_review", "needs_evidence", "proven", "proven", "proven", "rejected",
                "inconclusive", "withdrawn")


def reset(env: Environment) -> None:
    """Empty every table but the schema's version (TRUNCATE fires no row trigger)."""
    tables = [name for (name,) in env.psql(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
    env.psql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def fresh(env: Environment, app, people_count: int) -> int:
    """Empty tables, ``people_count`` alumni, the built-in questionnaires; the alumni
    questionnaire's id."""
    from survey.extensions import db
    from survey.questionnaires.models import Questionnaire
    from survey.questionnaires.services import load_builtin_questionnaires

    reset(env)
    people(env, people_count)
    with app.app_context():
        load_builtin_questionnaires()
        db.session.commit()
        return db.session.query(Questionnaire.id).filter_by(slug="alumni-outcomes").scalar()


def people(env: Environment, count: int, kind: str = "alumnus") -> None:
    """``count`` stakeholders, half French, with a programme and a cohort."""
    env.psql("""
        INSERT INTO stakeholders (kind, email, first_name, last_name, locale, timezone, attributes,
                                  created_at, updated_at)
        SELECT %s, 'person' || g || '@bench.example', 'Ada', 'Lovelace ' || g,
               CASE WHEN g %% 2 = 0 THEN 'fr' ELSE 'en' END, 'Europe/Paris',
               jsonb_build_object('programme', 'Programme ' || (g %% 12), 'cohort', (2015 + g %% 10)::text),
               now(), now()
        FROM generate_series(1, %s) g""", kind, count)
    env.psql("ANALYZE stakeholders")


def campaign(env: Environment, questionnaire_id: int, status: str, reminders: str = '["P3D", "P7D"]') -> int:
    [(campaign_id,)] = env.psql("""
        INSERT INTO campaigns (name, questionnaire_id, audience_kind, audience_filters, privacy, send_at,
                               closes_at, reminders, status, created_at, scheduled_at, sending_started_at,
                               invitations_made_at)
        VALUES ('Bench', %s, 'alumnus', '{}', 'identified', now() - interval '10 days',
                now() + interval '30 days', %s::jsonb, %s, now(), now(), now(), now())
        RETURNING id""", questionnaire_id, reminders, status)
    return campaign_id


def invitations(env: Environment, campaign_id: int, completed_share: float, reminder_due: bool) -> None:
    """One invitation per stakeholder, sent ten days ago; ``completed_share`` of them
    answered (every ``1/share``-th person); the others' next reminder is due now if
    ``reminder_due``."""
    every = max(1, round(1 / completed_share)) if completed_share else 0
    done = f"s.id %% {every} = 0" if every else "false"
    env.psql(f"""
        INSERT INTO invitations (campaign_id, stakeholder_id, token_nonce, token_hash, unsubscribe_hash, status,
                                 sent_at, opened_at, started_at, completed_at, reminders_sent, next_reminder_at,
                                 created_at)
        SELECT %s, s.id, md5(s.id::text), md5(s.id::text) || md5('t' || s.id), md5('u' || s.id) || md5(s.id::text),
               CASE WHEN {done} THEN 'completed' ELSE 'sent' END,
               now() - interval '10 days',
               CASE WHEN {done} THEN now() - interval '9 days' END,
               CASE WHEN {done} THEN now() - interval '9 days' END,
               CASE WHEN {done} THEN now() - interval '9 days' END,
               0,
               CASE WHEN %s THEN now() - interval '1 hour' END,
               now() - interval '10 days'
        FROM stakeholders s ORDER BY s.id""", campaign_id, reminder_due)
    env.psql("ANALYZE invitations")


def responses_and_claims(env: Environment, campaign_id: int) -> None:
    """A submitted response per completed invitation (an activity each), and a claim for
    four in ten of them, in every state."""
    activities = "ARRAY[" + ", ".join(f"'{a}'" for a in ACTIVITIES) + "]"
    outcomes = "ARRAY[" + ", ".join(f"'{o}'" for o in OUTCOMES) + "]"
    states = "ARRAY[" + ", ".join(f"'{s}'" for s in CLAIM_STATES) + "]"
    env.psql(f"""
        INSERT INTO responses (id, campaign_id, invitation_id, answers, locale, started_at, submitted_at, segment)
        SELECT gen_random_uuid(), i.campaign_id, i.id,
               jsonb_build_object('activity', ({activities})[1 + i.id %% 7]), 'fr',
               i.completed_at, i.completed_at, '{{}}'
        FROM invitations i WHERE i.campaign_id = %s AND i.completed_at IS NOT NULL""", campaign_id)
    env.psql(f"""
        INSERT INTO claims (response_id, campaign_id, stakeholder_id, outcome_type, details, state, token_nonce,
                            token_hash, created_at, decided_at)
        SELECT r.id, r.campaign_id, i.stakeholder_id, ({outcomes})[1 + i.id %% 5], '{{}}',
               ({states})[1 + (i.id / 7) %% 9], md5('c' || i.id), md5('c' || i.id) || md5('d' || i.id),
               now() - interval '8 days', now() - interval '2 days'
        FROM responses r JOIN invitations i ON i.id = r.invitation_id
        WHERE r.campaign_id = %s AND i.id %% 5 < 2""", campaign_id)
    env.psql("ANALYZE responses")
    env.psql("ANALYZE claims")
