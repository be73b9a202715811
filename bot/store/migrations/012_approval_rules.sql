-- Approvals that cannot be gamed (issue 16).
--
-- How each role holder got the role: 'declared' (the declarer became incident commander),
-- 'assigned' (/ic assign) or 'handover'. A role a person gave themselves ('assigned' or
-- 'handover' with assigned_by = user_id) never counts for an approval rule; one held since
-- declaring does, since it predates every request.
ALTER TABLE incident_roles ADD COLUMN how text NOT NULL DEFAULT 'assigned';
UPDATE incident_roles r SET how = 'declared'
    FROM incidents i
    WHERE r.incident_id = i.id AND r.role = 'incident commander'
      AND r.user_id = i.declared_by AND r.assigned_by = i.declared_by
      AND r.assigned_at = i.declared_at;

-- What a request changes ("kubernetes:waqiti/payment-service", "vault:secret/alerting/x"...):
-- one run per target at a time, across replicas (the unique index is the lock).
ALTER TABLE pending_actions ADD COLUMN target text;
CREATE UNIQUE INDEX pending_actions_one_run_per_target ON pending_actions (target)
    WHERE status = 'running';
-- The running process renews this while the run lasts; a run whose heartbeat stopped was
-- left by a dead process and is reported within about a minute.
ALTER TABLE pending_actions ADD COLUMN heartbeat_at timestamptz;

-- "Which incident?" buttons carry only this row's id; the original command stays here
-- (a button value holds at most 2,000 characters, a command more).
CREATE TABLE incident_choices (
    id          bigserial PRIMARY KEY,
    user_id     text NOT NULL,
    command     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
