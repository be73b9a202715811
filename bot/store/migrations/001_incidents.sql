-- Incidents, their roles, the hash-chained timeline, and the Slack outbox.

CREATE TABLE incidents (
    id              bigserial PRIMARY KEY,           -- shown as INC-<id>
    title           text NOT NULL,
    severity        text NOT NULL,                   -- sev1 .. sev4 (keys of severities.yml)
    status          text NOT NULL DEFAULT 'investigating',
    declared_by     text NOT NULL,
    channel_id      text NOT NULL,
    thread_ts       text,                            -- the card's ts once posted
    declared_at     timestamptz NOT NULL,
    acknowledged_at timestamptz,
    mitigated_at    timestamptz,
    resolved_at     timestamptz,
    summary         text,
    last_status     text,
    last_status_at  timestamptz,
    card_version    integer NOT NULL DEFAULT 1,      -- bumped by every change the card shows
    card_posted_version integer NOT NULL DEFAULT 0,
    timeline_count  integer NOT NULL DEFAULT 0,      -- head of the chain, so a removed tail shows
    timeline_head   text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL
);
CREATE INDEX incidents_open ON incidents (id) WHERE resolved_at IS NULL;

CREATE TABLE incident_roles (
    incident_id bigint NOT NULL REFERENCES incidents (id),
    role        text NOT NULL,
    user_id     text NOT NULL,
    assigned_by text NOT NULL,
    assigned_at timestamptz NOT NULL,
    PRIMARY KEY (incident_id, role)
);

CREATE TABLE timeline (
    id           bigserial PRIMARY KEY,
    incident_id  bigint NOT NULL REFERENCES incidents (id),
    seq          integer NOT NULL,
    kind         text NOT NULL,
    actor        text NOT NULL,
    text         text NOT NULL,
    data         jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  timestamptz NOT NULL,
    content_hash text NOT NULL,                     -- sha256 of the canonical content
    prev_hash    text NOT NULL,                     -- the previous entry's hash ('' for the first)
    hash         text NOT NULL,                     -- sha256(prev_hash || content_hash)
    UNIQUE (incident_id, seq)
);

-- Everything the bot posts to Slack goes through here: at least once, in order per incident.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    incident_id     bigint NOT NULL REFERENCES incidents (id),
    kind            text NOT NULL,                   -- 'card' | 'reply'
    dedupe_key      text NOT NULL UNIQUE,
    timeline_id     bigint REFERENCES timeline (id),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    claimed_until   timestamptz,
    posted_ts       text,
    done_at         timestamptz,
    failed          boolean NOT NULL DEFAULT false,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_pending ON outbox (incident_id, id) WHERE done_at IS NULL;

-- Events API deliveries already handled (Slack retries and repeats them).
CREATE TABLE slack_events (
    event_id    text PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
