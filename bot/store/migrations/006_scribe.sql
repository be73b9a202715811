-- The scribe: messages of incident threads captured into the timeline, pins, redaction.

-- A redacted entry (a deleted Slack message) keeps its content_hash, prev_hash and hash, so the
-- chain still links; its text and data are blanked. `timeline.verify_chain` accepts it only if
-- a later entry of the chain records the redaction with the same content hash.
ALTER TABLE timeline ADD COLUMN redacted_at timestamptz;

-- Every Slack message the scribe knows: captured from a thread, or pinned with :pushpin:.
-- The message's words live only in the timeline (so redaction has one place to drop them).
CREATE TABLE captures (
    channel_id  text NOT NULL,
    message_ts  text NOT NULL,
    incident_id bigint NOT NULL REFERENCES incidents (id),
    author      text NOT NULL,                       -- Slack user id of who wrote it
    captured    boolean NOT NULL,                    -- its text is in a `message` entry
    pinned_by   text[] NOT NULL DEFAULT '{}',        -- who reacted with :pushpin:, in order
    deleted_at  timestamptz,                         -- deleted in Slack; its text was redacted
    PRIMARY KEY (channel_id, message_ts)
);
CREATE INDEX captures_incident ON captures (incident_id);

-- Thread messages are matched to incidents by their thread_ts.
CREATE INDEX incidents_thread ON incidents (channel_id, thread_ts) WHERE thread_ts IS NOT NULL;

-- A :pushpin: on one of the bot's own posts finds its incident through the outbox.
CREATE INDEX outbox_posted_ts ON outbox (posted_ts) WHERE posted_ts IS NOT NULL;
