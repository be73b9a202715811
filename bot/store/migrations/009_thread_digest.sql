-- The thread digest: chatter (captured messages, PagerDuty events, checklist ticks, ...) is not
-- posted as a reply per entry but folded into one bot message, edited in place. A segment is
-- one such message: it collects the folded entries from `first_seq` on, until the next key
-- event's reply is posted below it (`closed`); the next folded entry then starts a new one.
CREATE TABLE thread_digests (
    incident_id bigint NOT NULL REFERENCES incidents (id),
    first_seq   integer NOT NULL,                    -- the entry that opened the segment
    last_seq    integer NOT NULL,                    -- the newest entry the message shows
    ts          text NOT NULL,                       -- the Slack message
    closed      boolean NOT NULL DEFAULT false,      -- a key event was posted after it
    PRIMARY KEY (incident_id, first_seq)
);
CREATE UNIQUE INDEX thread_digests_open ON thread_digests (incident_id) WHERE NOT closed;

-- Digest items name their entry like replies do.
COMMENT ON COLUMN outbox.kind IS 'card | reply | refresh | digest (slack); PagerDuty write kinds';
