-- Email when Slack is down (issue 21). One row says how Slack has been answering the outbox's
-- posts, shared by every replica: when the failures started (cleared by any success), and the
-- outage once they lasted SLACK_DOWN_AFTER. A row, not process memory, so the replica that sees
-- the threshold pass, the one that emails and the one whose post succeeds again agree, and a
-- restart in the middle of an outage neither forgets it nor announces it twice.
CREATE TABLE slack_health (
    id            boolean PRIMARY KEY DEFAULT true CHECK (id),  -- exactly one row
    failing_since timestamptz,   -- first failed Slack post since the last one that went through
    down_since    timestamptz,   -- = failing_since once the failures lasted SLACK_DOWN_AFTER
    last_error    text
);
INSERT INTO slack_health DEFAULT VALUES;

-- People's email addresses from Slack's users.info, cached while Slack answers: when it does
-- not, this is the only place they can be read.
CREATE TABLE user_emails (
    user_id    text PRIMARY KEY,
    email      text,                       -- NULL: Slack shows none (no users:read.email scope)
    name       text,
    fetched_at timestamptz NOT NULL
);
