-- PagerDuty: the linked PagerDuty incident, a second outbox channel, webhook dedupe.

ALTER TABLE incidents
    ADD COLUMN pagerduty_id     text,
    ADD COLUMN pagerduty_url    text,
    ADD COLUMN pagerduty_lagging boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX incidents_pagerduty_id ON incidents (pagerduty_id) WHERE pagerduty_id IS NOT NULL;

-- Outbox items go to Slack or to PagerDuty; each channel keeps its own order per incident, so
-- a PagerDuty outage never holds the Slack thread back (nor the reverse).
ALTER TABLE outbox
    ADD COLUMN channel text NOT NULL DEFAULT 'slack',
    ADD COLUMN payload jsonb NOT NULL DEFAULT '{}'::jsonb;
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (channel, incident_id, id) WHERE done_at IS NULL;

CREATE TABLE pagerduty_events (
    event_id    text PRIMARY KEY,          -- event.id of a V3 webhook (stable across retries)
    received_at timestamptz NOT NULL DEFAULT now()
);
