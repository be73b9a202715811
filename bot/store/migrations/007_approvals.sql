-- Remediation requests waiting for (or past) approval. Buttons carry only the id; every click
-- is decided by one conditional UPDATE, so a double click or two replicas never run it twice.
CREATE TABLE pending_actions (
    id            bigserial PRIMARY KEY,
    incident_id   bigint NOT NULL REFERENCES incidents (id),
    action        text NOT NULL,
    label         text NOT NULL,
    params        jsonb NOT NULL,
    preview       jsonb NOT NULL DEFAULT '{}'::jsonb,   -- what will happen, shown on the card
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    required      integer NOT NULL DEFAULT 1,
    approvers     jsonb NOT NULL,                       -- the policy that applied, for the record
    approvals     jsonb NOT NULL DEFAULT '[]'::jsonb,   -- Slack user ids, in order
    status        text NOT NULL DEFAULT 'pending',      -- pending approved denied expired running succeeded failed
    decided_by    text,
    decided_at    timestamptz,
    result        jsonb,
    entry_id      bigint REFERENCES timeline (id)       -- the request's timeline entry (its card)
);
CREATE INDEX pending_actions_open ON pending_actions (expires_at) WHERE status = 'pending';
