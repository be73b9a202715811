-- Status-prompt and escalation timers (one set per incident) and post-incident reminders.

ALTER TABLE incidents
    ADD COLUMN next_prompt_at  timestamptz,          -- when the next status prompt is due; NULL = none
    ADD COLUMN prompt_seq      integer NOT NULL DEFAULT 0,   -- prompts posted so far
    ADD COLUMN unanswered      integer NOT NULL DEFAULT 0,   -- prompts since the last status update
    ADD COLUMN escalate_at     timestamptz,          -- the severity policy's escalation; NULL = none
    ADD COLUMN escalated_at    timestamptz;

CREATE INDEX incidents_prompt_due ON incidents (next_prompt_at)
    WHERE resolved_at IS NULL AND next_prompt_at IS NOT NULL;
CREATE INDEX incidents_escalation_due ON incidents (escalate_at)
    WHERE resolved_at IS NULL AND escalate_at IS NOT NULL;

CREATE TABLE reminders (
    id          bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id),
    stage       text NOT NULL,                       -- key of the checklist stage
    due_at      timestamptz NOT NULL,
    posted_at   timestamptz,
    entry_id    bigint REFERENCES timeline (id),     -- the timeline entry that posted it
    ticked      jsonb NOT NULL DEFAULT '[]'::jsonb,  -- indexes of ticked items
    UNIQUE (incident_id, stage)
);
CREATE INDEX reminders_due ON reminders (due_at) WHERE posted_at IS NULL;
