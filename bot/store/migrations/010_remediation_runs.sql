-- When a remediation started running, so a run cut short by a dead process is noticed: the
-- sweeper marks approved-but-never-started and running-for-too-long requests as failed, with
-- the timeline saying so, instead of leaving their cards "running" forever.
ALTER TABLE pending_actions ADD COLUMN started_at timestamptz;
CREATE INDEX pending_actions_unfinished ON pending_actions (id)
    WHERE status IN ('approved', 'running');
