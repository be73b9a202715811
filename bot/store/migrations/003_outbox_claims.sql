-- Who holds an outbox item's lease: a worker renews it right before posting and skips the
-- item if another replica took it over after the lease ran out.
ALTER TABLE outbox ADD COLUMN claim_token text;
