-- Exactly once per Slack request: one row per request handled (a slash command's, button's or
-- shortcut's trigger_id, a view submission's view id and hash, an event's event_id), claimed
-- in the transaction of the request's work. Rows older than the repeat window are pruned.

CREATE TABLE slack_requests (
    key        text PRIMARY KEY,            -- 'event:<event_id>', 'trigger:<digest>', 'view:<digest>'
    owner      text NOT NULL,               -- the delivery that claimed it (a repeat has another)
    claimed_at timestamptz NOT NULL
);
CREATE INDEX slack_requests_claimed_at ON slack_requests (claimed_at);

-- Events already handled by the previous release stay handled. slack_events itself is left for
-- replicas still running that release during a rolling update; a later migration drops it.
INSERT INTO slack_requests (key, owner, claimed_at)
SELECT 'event:' || event_id, '', received_at FROM slack_events
WHERE received_at > now() - interval '30 minutes'
ON CONFLICT DO NOTHING;
