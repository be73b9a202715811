-- Action items' state beside their timeline entry (issue 21): ticked (in Slack or in Jira) and
-- the Jira issue filed for them. A row appears when either happens; `item_seq` is the seq of
-- the item's `action_item` entry. The conditional tick (done_at IS NULL) makes a tick once.
CREATE TABLE action_items (
    incident_id bigint  NOT NULL REFERENCES incidents (id),
    item_seq    integer NOT NULL,
    done_at     timestamptz,
    done_by     text,
    jira_key    text,
    jira_url    text,
    PRIMARY KEY (incident_id, item_seq)
);
CREATE UNIQUE INDEX action_items_jira_key ON action_items (jira_key) WHERE jira_key IS NOT NULL;
