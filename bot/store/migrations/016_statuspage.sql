-- The Atlassian Statuspage incident that carries an incident's public updates (issue 21): the
-- first approved update creates it, later ones update it. One per incident and page.

CREATE TABLE statuspage_incidents (
    incident_id      bigint NOT NULL REFERENCES incidents(id),
    page_id          text NOT NULL,
    page_incident_id text NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (incident_id, page_id)
);
