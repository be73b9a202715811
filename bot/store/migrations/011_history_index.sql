-- `/ic list --all` reads the incidents declared in a window (newest first): an index, so the
-- history report does not scan every incident the alert intake ever declared.
CREATE INDEX incidents_declared_at ON incidents (declared_at DESC, id DESC);
