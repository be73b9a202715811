-- Exactly once per request from outside: one row per Slack request (a slash command's, button's
-- or shortcut's trigger_id, a view submission's view id and hash, an event's event_id) and per
-- PagerDuty webhook event, claimed in the transaction of its work (bot/once.py). A row counts
-- until `expires_at` (Slack: 30 minutes; PagerDuty, which redelivers for 48 hours: 72 hours),
-- then it is pruned.

CREATE TABLE handled_requests (
    key        text PRIMARY KEY,            -- 'event:…', 'trigger:<digest>', 'view:<digest>', 'pagerduty:…'
    owner      text NOT NULL,               -- the delivery that claimed it (a repeat is another)
    claimed_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX handled_requests_expires_at ON handled_requests (expires_at);

-- What the previous release recorded stays handled. slack_events and pagerduty_events are left
-- for replicas still running that release during a rolling update; a later migration drops them.
INSERT INTO handled_requests (key, owner, claimed_at, expires_at)
SELECT 'event:' || event_id, '', received_at, received_at + interval '30 minutes'
FROM slack_events WHERE received_at > now() - interval '30 minutes'
ON CONFLICT DO NOTHING;
INSERT INTO handled_requests (key, owner, claimed_at, expires_at)
SELECT 'pagerduty:' || event_id, '', received_at, received_at + interval '72 hours'
FROM pagerduty_events WHERE received_at > now() - interval '72 hours'
ON CONFLICT DO NOTHING;
