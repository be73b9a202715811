-- When a remediation started running, so a run cut short by a dead process is noticed: the
-- sweeper marks approved-but-never-started and running-for-too-long requests as failed, with
-- the timeline saying so, instead of leaving their cards "running" forever.
ALTER TABLE pending_actions ADD COLUMN started_at timestamptz;
CREATE INDEX pending_actions_unfinished ON pending_actions (id)
    WHERE status IN ('approved', 'running');
-- Runs going on while this migration is applied get a start time, so they are swept too.
UPDATE pending_actions SET started_at = coalesce(decided_at, requested_at)
    WHERE status = 'running' AND started_at IS NULL;
