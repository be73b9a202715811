-- Kafka in and out (issue 12): alert groups, the intake's offset fence, and how far each
-- incident's timeline has been published to the incident-events topic.

-- Firing alerts the intake attributed to the incident: the card shows it instead of new posts.
ALTER TABLE incidents ADD COLUMN alert_count integer NOT NULL DEFAULT 0;

-- Alerts of one (service, fingerprint) within one tumbling window. The unique key is the
-- idempotency key of a declaration: a redelivered alert finds its group and its incident.
CREATE TABLE alert_groups (
    id            bigserial PRIMARY KEY,
    service       text NOT NULL,
    fingerprint   text NOT NULL,
    window_start  timestamptz NOT NULL,
    incident_id   bigint REFERENCES incidents (id),
    alert_name    text NOT NULL,
    source        text NOT NULL,
    severity      text NOT NULL,                    -- the alert's own word (critical, warning, ...)
    summary       text NOT NULL,
    labels        jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL,                    -- firing | resolved
    firing        integer NOT NULL DEFAULT 0,       -- firing notifications received
    resolved      integer NOT NULL DEFAULT 0,       -- resolved notifications received
    first_at      timestamptz NOT NULL,
    last_firing_at timestamptz NOT NULL,
    resolved_at   timestamptz,
    UNIQUE (service, fingerprint, window_start)
);
CREATE INDEX alert_groups_service_incident ON alert_groups (service, incident_id DESC);
CREATE INDEX alert_groups_incident ON alert_groups (incident_id);

-- The intake's own record of what it has stored, per consumer group and partition, written in
-- the transaction of the change: a batch redelivered after a crash between that commit and the
-- Kafka offset commit is skipped, so counters stay exact and nothing is declared twice.
CREATE TABLE kafka_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,                    -- the first offset not yet stored
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- The timeline is the events outbox: entries with seq > published_seq are still to be sent to
-- the incident-events topic, in seq order. A replica leases an incident before publishing.
CREATE TABLE incident_event_marks (
    incident_id     bigint PRIMARY KEY REFERENCES incidents (id),
    published_seq   integer NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,     -- failed rounds in a row
    next_attempt_at timestamptz NOT NULL DEFAULT '-infinity',
    claimed_until   timestamptz,
    claim_token     text,
    last_error      text,
    published_at    timestamptz
);
