-- A checklist need not come from the severity policy: a diagnosis posts its playbook's manual
-- steps as one, with its own title and items.
ALTER TABLE reminders
    ADD COLUMN title text,
    ADD COLUMN items jsonb;
